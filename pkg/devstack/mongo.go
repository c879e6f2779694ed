package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Mongo is an embedded FerretDB serving the MongoDB wire protocol on a
// loopback port, with its data in SQLite files.
type Mongo struct {
	uri    string
	logger *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}

	// The helpers working on FerretDB's files: the _id indexer and the checkpointer.
	stopHelpers context.CancelFunc
	helpers     sync.WaitGroup

	// stopWaiting ends the write lock wait of sqlitewait.go for this data directory.
	stopWaiting func()

	closeOnce sync.Once
	closeErr  error
}

// StartMongo starts FerretDB with the SQLite handler, storing its databases
// (one SQLite file each) in dir, which is created if needed. It listens on a
// free port of 127.0.0.1.
//
// ctx is only used while starting: FerretDB runs until [Mongo.Close].
//
// FerretDB's own logs go to logger at error level only. Starting two
// instances concurrently is a data race inside FerretDB (it writes a package
// variable in ferretdb.New), so start them one at a time.
func StartMongo(ctx context.Context, dir string, logger *slog.Logger) (*Mongo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start mongo: %w", err)
	}
	logger = orDiscard(logger).With(slog.String("component", "ferretdb"))

	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve mongo data dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("create mongo data dir: %w", err)
	}

	// The SQLite handler wants a "file:" URI naming a directory, with a
	// trailing slash. In WAL mode, synchronous=normal skips the fsync of every
	// commit: a killed process loses nothing (the data is in the OS page cache), only
	// a power cut can drop the last commits, and the database stays consistent. That
	// is the right trade for a development stack; production runs MongoDB.
	// temp_store=memory keeps statement journals (every multi-row insert in a
	// transaction writes one) in memory instead of spilling them to temporary files.
	// Checkpoints are left to the checkpointer (see walcheckpoint.go), and waits for the
	// write lock to the connection hook of sqlitewait.go.
	sqliteURL := (&url.URL{Scheme: "file", Path: abs + string(filepath.Separator),
		RawQuery: "_pragma=synchronous(normal)&_pragma=temp_store(memory)&_pragma=wal_autocheckpoint(0)"}).String()

	stopWaiting := waitForWriteLockIn(abs)
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:    atLeast(logger, slog.LevelError),
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		stopWaiting()
		return nil, fmt.Errorf("create ferretdb in %s: %w", abs, err)
	}

	// The TCP listener is bound in ferretdb.New, so the URI is known before
	// Run starts accepting connections; clients that connect early wait in
	// the accept backlog.
	uri := f.MongoDBURI()

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m := &Mongo{
		uri:         uri,
		logger:      logger,
		cancel:      cancel,
		done:        make(chan struct{}),
		stopWaiting: stopWaiting,
	}
	go func() {
		defer close(m.done)
		// Run only returns once the listener, every connection and the
		// SQLite backend are closed; its error is always nil in v1.24.
		if err := f.Run(runCtx); err != nil {
			m.closeErr = fmt.Errorf("run ferretdb: %w", err)
		}
	}()

	helpersCtx, stopHelpers := context.WithCancel(context.WithoutCancel(ctx))
	m.stopHelpers = stopHelpers
	m.helpers.Go(func() { newIDIndexer(abs, logger).run(helpersCtx, idIndexInterval) })
	m.helpers.Go(func() { newWALCheckpointer(abs, logger).run(helpersCtx, walCheckpointInterval) })

	logger.Debug("mongo started", slog.String("uri", uri), slog.String("dir", abs))
	return m, nil
}

// URI returns a mongodb:// URI for this server, for example
// "mongodb://127.0.0.1:40123/".
func (m *Mongo) URI() string { return m.uri }

// Close stops FerretDB and waits until its listener, connections and SQLite
// databases are closed. FerretDB gives clients that are still connected
// 3 seconds to disconnect before it drops them, so disconnect clients first
// for a fast shutdown. It is safe to call more than once.
func (m *Mongo) Close() error {
	m.closeOnce.Do(func() {
		m.stopHelpers()
		m.helpers.Wait()
		m.cancel()
		<-m.done
		m.stopWaiting()
		m.logger.Debug("mongo stopped")
	})
	return m.closeErr
}
