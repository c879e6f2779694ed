package devstack

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"time"
)

// SQLite in WAL mode copies the log back into the database file (a checkpoint) once
// the log passes 1,000 pages, and it does so in the connection whose commit crossed
// that mark, before that commit returns. Under chat load that connection is the
// session service's group insert, the one serial step every message waits for, and
// the checkpoint was a fifth of its time. FerretDB's connections are therefore opened
// with automatic checkpoints off (wal_autocheckpoint(0), see StartMongo) and the
// checkpointer does them from its own connection, in PASSIVE mode: it copies what no
// reader still needs and never blocks a writer. Running every walCheckpointInterval
// also keeps the log short, so hot index pages are copied once per interval rather
// than once per burst of commits.

// walCheckpointInterval is how often the checkpointer runs.
const walCheckpointInterval = 100 * time.Millisecond

// walFileRescan is how often the checkpointer looks for new (and dropped) database files.
const walFileRescan = time.Second

type walCheckpointer struct {
	dir     string
	logger  *slog.Logger
	dbs     map[string]*sql.DB // SQLite file → handle
	scanned time.Time
	warned  time.Time
}

func newWALCheckpointer(dir string, logger *slog.Logger) *walCheckpointer {
	return &walCheckpointer{dir: dir, logger: logger, dbs: map[string]*sql.DB{}}
}

// run checkpoints every interval until ctx ends, and once more on the way out.
func (c *walCheckpointer) run(ctx context.Context, interval time.Duration) {
	defer c.close()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := c.pass(ctx); err != nil && ctx.Err() == nil && time.Since(c.warned) > time.Minute {
			c.warned = time.Now()
			c.logger.Warn("checkpoint SQLite write-ahead logs", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			_ = c.pass(context.Background())
			return
		case <-t.C:
		}
	}
}

// pass checkpoints every database file.
func (c *walCheckpointer) pass(ctx context.Context) error {
	if time.Since(c.scanned) >= walFileRescan {
		if err := c.scan(); err != nil {
			return err
		}
	}
	var errs []error
	for f, db := range c.dbs {
		// The row is (busy, frames in the log, frames copied). Frames a reader still
		// needs are left for a later pass.
		var busy, logFrames, copied int
		if err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &copied); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Base(f), err))
		}
	}
	return errors.Join(errs...)
}

func (c *walCheckpointer) scan() error {
	c.scanned = time.Now()
	files, err := filepath.Glob(filepath.Join(c.dir, "*.sqlite"))
	if err != nil {
		return err
	}
	present := make(map[string]bool, len(files))
	for _, f := range files {
		present[f] = true
	}
	for f, db := range c.dbs {
		if !present[f] { // a dropped database: let its file go
			_ = db.Close()
			delete(c.dbs, f)
		}
	}
	for _, f := range files {
		if c.dbs[f] != nil {
			continue
		}
		// mode=rw: never create a database file FerretDB has not created. A checkpoint
		// needs no busy wait: PASSIVE gives up on what it cannot copy now.
		u := url.URL{Scheme: "file", Path: f, RawQuery: "mode=rw"}
		db, err := sql.Open("sqlite", u.String())
		if err != nil {
			return err
		}
		db.SetMaxOpenConns(1)
		c.dbs[f] = db
	}
	return nil
}

func (c *walCheckpointer) close() {
	for f, db := range c.dbs {
		_ = db.Close()
		delete(c.dbs, f)
	}
}
