package devstack

import (
	"errors"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite lets one connection write a database at a time. A connection that finds the
// write lock taken calls its busy handler, and the default one (what FerretDB's
// busy_timeout pragma sets) sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then
// 100 ms between attempts without knowing when the lock is released. FerretDB serves
// every client connection with its own SQLite connection, so when the services write
// at once (a burst of new conversations: a customer upsert, a session insert and an
// assignment each, beside the message inserts) the waiters sleep through most of the
// time the lock is free. The write lock is the one serial step of the dev stack, so
// that idle time is latency for everything behind it: a profile of 100 new
// conversations a second found FerretDB's connections asleep in the busy handler for
// twice the wall time.
//
// The dev stack's connections therefore wait for the write lock in Go, in the order
// they started waiting: every commit (SQLite's WAL hook) and rollback wakes the oldest
// waiter, which tries again at once. The lock is not handed over: a connection that
// did not have to wait can still take it first, and the woken waiter then waits at the
// head of the queue for the next release. A waiter that misses a release (a write
// transaction that ends without writing calls neither hook) tries again after
// writeLockPoll. A wait still gives up after writeLockTimeout, as busy_timeout does.

// Variables for tests.
var (
	// writeLockTimeout is how long a connection waits for the write lock before its
	// statement fails with SQLITE_BUSY (FerretDB's busy_timeout).
	writeLockTimeout = 10 * time.Second
	// writeLockPoll bounds one wait for a release.
	writeLockPoll = 2 * time.Millisecond
)

// writeLock is what the busy handlers of the dev stack's connections wait on.
var writeLock = struct {
	mu    sync.Mutex
	dirs  map[string]int          // directories whose databases wait in Go, with their users
	conns map[uintptr]*lockWaiter // connections in a wait, by SQLite handle
	queue []*lockWaiter           // those of them waiting for a release, oldest first
	waits atomic.Int64            // busy handler calls, for tests
}{dirs: map[string]int{}, conns: map[uintptr]*lockWaiter{}}

// lockWaiter is a connection's wait for the write lock. A release wakes the oldest
// queued waiter; the wake-up is kept until it waits, so none is lost.
type lockWaiter struct {
	since  time.Time // when the wait began
	queued bool
	wake   chan struct{}
}

var registerWriteLockHook sync.Once

// waitForWriteLockIn makes the connections to the SQLite databases in dir that are
// opened from now until the returned function is called wait for the write lock as
// described above (for as long as they stay open).
func waitForWriteLockIn(dir string) (release func()) {
	registerWriteLockHook.Do(func() { sqlite.RegisterConnectionHook(installWriteLockWait) })
	dir = filepath.Clean(dir)
	writeLock.mu.Lock()
	writeLock.dirs[dir]++
	writeLock.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			writeLock.mu.Lock()
			if writeLock.dirs[dir]--; writeLock.dirs[dir] <= 0 {
				delete(writeLock.dirs, dir)
			}
			writeLock.mu.Unlock()
		})
	}
}

// installWriteLockWait is the driver's connection hook: it replaces the busy handler
// of connections to databases in a registered directory.
func installWriteLockWait(conn sqlite.ExecQuerierContext, dsn string) error {
	if !waitsInGo(dsn) {
		return nil
	}
	tls, db, err := sqliteHandle(conn)
	if err != nil {
		return err
	}
	sqlite3.Xsqlite3_busy_handler(tls, db, cFuncPointer(writeLockBusy), db)
	sqlite3.Xsqlite3_wal_hook(tls, db, cFuncPointer(writeLockCommitted), 0)
	sqlite3.Xsqlite3_rollback_hook(tls, db, cFuncPointer(writeLockRolledBack), db)
	return nil
}

// waitsInGo says whether the database a DSN names is in a registered directory.
func waitsInGo(dsn string) bool {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme != "file" {
		return false
	}
	p := u.Path
	if p == "" {
		p = u.Opaque
	}
	if p == "" || strings.HasPrefix(p, ":memory:") {
		return false
	}
	writeLock.mu.Lock()
	defer writeLock.mu.Unlock()
	return writeLock.dirs[filepath.Dir(filepath.Clean(p))] > 0
}

// sqliteHandle finds the SQLite handle of a driver connection. The driver does not
// export it; a driver whose connection no longer has these fields is an error, so an
// upgrade that changes them fails loudly (and its test) rather than going back to
// sleeping waiters unnoticed.
func sqliteHandle(conn any) (*libc.TLS, uintptr, error) {
	v := reflect.ValueOf(conn)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, 0, errors.New("sqlite write lock wait: unexpected driver connection type " + v.Type().String())
	}
	db, tls := v.Elem().FieldByName("db"), v.Elem().FieldByName("tls")
	if !db.IsValid() || db.Kind() != reflect.Uintptr || !tls.IsValid() || tls.Type() != reflect.TypeFor[*libc.TLS]() {
		return nil, 0, errors.New("sqlite write lock wait: the driver's connection has no db handle and TLS")
	}
	if db.Uint() == 0 || tls.IsNil() {
		return nil, 0, errors.New("sqlite write lock wait: the connection is not open")
	}
	return (*libc.TLS)(tls.UnsafePointer()), uintptr(db.Uint()), nil
}

// cFuncPointer turns a top-level Go function into the function pointer the
// transpiled SQLite calls (see modernc.org/sqlite's function of the same name).
func cFuncPointer[T any](f T) uintptr {
	return *(*uintptr)(unsafe.Pointer(&struct{ f T }{f}))
}

// writeLockBusy is the busy handler: it returns 1 to try again, 0 to give up.
func writeLockBusy(_ *libc.TLS, db uintptr, count int32) int32 {
	writeLock.waits.Add(1)
	now := time.Now()
	writeLock.mu.Lock()
	w := writeLock.conns[db]
	if count == 0 || w == nil {
		// A new wait.
		if w != nil {
			dequeueLocked(w)
		}
		w = &lockWaiter{since: now, wake: make(chan struct{}, 1)}
		writeLock.conns[db] = w
		if count == 0 {
			// The lock may have been released since the attempt that failed: try
			// once more before queueing.
			writeLock.mu.Unlock()
			return 1
		}
	}
	if now.Sub(w.since) >= writeLockTimeout {
		delete(writeLock.conns, db)
		dequeueLocked(w)
		writeLock.mu.Unlock()
		return 0
	}
	if !w.queued {
		w.queued = true
		writeLock.queue = append(writeLock.queue, w)
	}
	writeLock.mu.Unlock()

	t := time.NewTimer(writeLockPoll)
	select {
	case <-w.wake:
	case <-t.C:
	}
	t.Stop()
	return 1
}

// writeLockCommitted is the WAL hook, called after every commit that wrote the log.
func writeLockCommitted(_ *libc.TLS, _, db, _ uintptr, _ int32) int32 {
	writeLockReleased(db)
	return sqlite3.SQLITE_OK
}

// writeLockRolledBack is the rollback hook; its argument is the connection.
func writeLockRolledBack(_ *libc.TLS, db uintptr) {
	writeLockReleased(db)
}

// writeLockReleased takes the connection that held the lock off the queue (it got
// what it waited for) and wakes the oldest waiter that has taken its last wake-up.
// One that has not is still on its way to the lock, or is not waiting any more: it
// got the lock and ended without a commit (a read that had to wait, a write
// transaction that wrote nothing), and it leaves the queue when it next waits or
// commits. Such a connection takes at most one wake-up meant for the others.
func writeLockReleased(db uintptr) {
	writeLock.mu.Lock()
	if w := writeLock.conns[db]; w != nil {
		delete(writeLock.conns, db)
		dequeueLocked(w)
	}
	for _, w := range writeLock.queue {
		select {
		case w.wake <- struct{}{}:
			writeLock.mu.Unlock()
			return
		default: // still holds a wake-up: on to the next
		}
	}
	writeLock.mu.Unlock()
}

func dequeueLocked(w *lockWaiter) {
	if !w.queued {
		return
	}
	w.queued = false
	if i := slices.Index(writeLock.queue, w); i >= 0 {
		writeLock.queue = slices.Delete(writeLock.queue, i, i+1)
	}
}
