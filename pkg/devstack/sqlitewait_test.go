package devstack

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// openSQLite opens a WAL database in dir with SQLite's own busy handler set, as
// FerretDB opens its databases.
func openSQLite(t testing.TB, dir string) *sql.DB {
	t.Helper()
	dsn := (&url.URL{Scheme: "file", Path: filepath.Join(dir, "t.sqlite"),
		RawQuery: "_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)"}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	return db
}

// holdWriteLock starts a write transaction on its own connection and returns it.
func holdWriteLock(t *testing.T, ctx context.Context, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, "INSERT INTO t (v) VALUES ('holder')"); err != nil {
		t.Fatal(err)
	}
	return c
}

// insertBehind inserts the row v from another connection and reports the result.
func insertBehind(ctx context.Context, db *sql.DB, v string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := db.ExecContext(ctx, "INSERT INTO t (v) VALUES (?)", v)
		done <- err
	}()
	return done
}

// waitForQueue waits until n connections wait in the queue.
func waitForQueue(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		writeLock.mu.Lock()
		queued := len(writeLock.queue)
		writeLock.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections wait for the write lock, want %d", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitForBusyCalls waits until the busy handler of this file has been called more
// than n times.
func waitForBusyCalls(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for writeLock.waits.Load() <= n {
		if time.Now().After(deadline) {
			t.Fatalf("the busy handler was called %d times, want more than %d", writeLock.waits.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func countRows(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWritersWaitForTheWriteLockInGo(t *testing.T) {
	ctx := testContext(t)

	t.Run("registered directory", func(t *testing.T) {
		dir := t.TempDir()
		t.Cleanup(waitForWriteLockIn(dir))
		db := openSQLite(t, dir)
		for _, end := range []string{"COMMIT", "ROLLBACK"} {
			holder := holdWriteLock(t, ctx, db)
			before := writeLock.waits.Load()
			done := insertBehind(ctx, db, "waiter")
			// The waiter is in this file's busy handler, past its first retry.
			waitForBusyCalls(t, before+1)
			select {
			case err := <-done:
				t.Fatalf("the insert finished while another connection held the write lock: %v", err)
			default:
			}
			if _, err := holder.ExecContext(ctx, end); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("insert after %s: %v", end, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("the insert still waits after %s", end)
			}
			_ = holder.Close()
		}
		// holder, waiter, (rolled back holder), waiter
		if n := countRows(t, db); n != 3 {
			t.Fatalf("%d rows, want 3", n)
		}
	})

	t.Run("oldest waiter first", func(t *testing.T) {
		dir := t.TempDir()
		t.Cleanup(waitForWriteLockIn(dir))
		// Only releases wake the waiters.
		prev := writeLockPoll
		writeLockPoll = time.Minute
		t.Cleanup(func() { writeLockPoll = prev })
		db := openSQLite(t, dir)
		holder := holdWriteLock(t, ctx, db)
		var done []<-chan error
		for i := range 3 {
			done = append(done, insertBehind(ctx, db, fmt.Sprint("waiter ", i)))
			waitForQueue(t, i+1)
		}
		if _, err := holder.ExecContext(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		for _, d := range done {
			if err := <-d; err != nil {
				t.Fatal(err)
			}
		}
		rows, err := db.QueryContext(ctx, "SELECT v FROM t ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
		if want := []string{"holder", "waiter 0", "waiter 1", "waiter 2"}; !slices.Equal(got, want) {
			t.Fatalf("rows in the order %q, want %q", got, want)
		}
	})

	t.Run("gives up after the timeout", func(t *testing.T) {
		dir := t.TempDir()
		t.Cleanup(waitForWriteLockIn(dir))
		prev := writeLockTimeout
		writeLockTimeout = 150 * time.Millisecond
		t.Cleanup(func() { writeLockTimeout = prev })
		db := openSQLite(t, dir)
		holder := holdWriteLock(t, ctx, db)
		start := time.Now()
		err := <-insertBehind(ctx, db, "waiter")
		var se *sqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY {
			t.Fatalf("insert while the lock is held past the timeout: %v, want SQLITE_BUSY", err)
		}
		if waited := time.Since(start); waited < writeLockTimeout {
			t.Fatalf("gave up after %v, before the timeout of %v", waited, writeLockTimeout)
		}
		if _, err := holder.ExecContext(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, db); n != 1 {
			t.Fatalf("%d rows, want 1", n)
		}
	})

	t.Run("other directories keep SQLite's handler", func(t *testing.T) {
		registered := t.TempDir()
		t.Cleanup(waitForWriteLockIn(registered))
		db := openSQLite(t, t.TempDir())
		holder := holdWriteLock(t, ctx, db)
		before := writeLock.waits.Load()
		done := insertBehind(ctx, db, "waiter")
		time.Sleep(50 * time.Millisecond) // long enough for SQLite's handler to run several times
		if _, err := holder.ExecContext(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := writeLock.waits.Load(); n != before {
			t.Fatalf("this file's busy handler ran %d times for a database outside the registered directory", n-before)
		}
	})
}

// FerretDB opens its databases with its own DSN; the dev stack's Mongo must still get
// the Go wait, and concurrent writers must all land.
func TestFerretDBWritersWaitInGo(t *testing.T) {
	m, _ := startMongo(t)
	ctx := testContext(t)
	const writers, perWriter = 8, 60
	before := writeLock.waits.Load()
	withMongo(t, m.URI(), func(c *mongo.Client) {
		coll := c.Database("devstack").Collection("contended")
		var g errgroup.Group
		for w := range writers {
			g.Go(func() error {
				for i := range perWriter {
					if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("%d-%d", w, i)}}); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		n, err := coll.CountDocuments(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		if n != writers*perWriter {
			t.Fatalf("%d documents, want %d", n, writers*perWriter)
		}
	})
	if writeLock.waits.Load() == before {
		t.Fatal("no FerretDB connection waited in the Go busy handler: is the connection hook installed?")
	}
}

// BenchmarkContendedWrites runs write transactions from several connections at once,
// as FerretDB's connections do, with the Go wait and with SQLite's own busy handler.
func BenchmarkContendedWrites(b *testing.B) {
	text := strings.Repeat("a message of some length ", 12)
	for _, rows := range []int{1, 20} {
		for _, wait := range []string{"go", "sqlite"} {
			b.Run(fmt.Sprintf("rows=%d/wait=%s", rows, wait), func(b *testing.B) {
				dir := b.TempDir()
				if wait == "go" {
					b.Cleanup(waitForWriteLockIn(dir))
				}
				db := openSQLite(b, dir)
				const writers = 8
				db.SetMaxOpenConns(writers)
				ctx := context.Background()
				lat := make([][]time.Duration, writers)
				var wg sync.WaitGroup
				b.ResetTimer()
				for w := range writers {
					wg.Go(func() {
						for i := w; i < b.N; i += writers {
							start := time.Now()
							tx, err := db.BeginTx(ctx, nil)
							if err == nil {
								for r := 0; r < rows && err == nil; r++ {
									_, err = tx.ExecContext(ctx, "INSERT INTO t (v) VALUES (?)", text)
								}
								if err == nil {
									err = tx.Commit()
								} else {
									_ = tx.Rollback()
								}
							}
							if err != nil {
								b.Error(err)
								return
							}
							lat[w] = append(lat[w], time.Since(start))
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				all := slices.Concat(lat...)
				slices.Sort(all)
				if len(all) > 0 {
					b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
					b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
					b.ReportMetric(float64(all[len(all)-1].Microseconds()), "max-µs")
				}
			})
		}
	}
}
