package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	logger  *slog.Logger
	files   *sqliteFiles
	scanned time.Time
	warned  time.Time
}

// A checkpoint needs no busy wait: PASSIVE gives up on what it cannot copy now.
func newWALCheckpointer(dir string, logger *slog.Logger) *walCheckpointer {
	return &walCheckpointer{logger: logger, files: newSQLiteFiles(dir, "")}
}

// run checkpoints every interval until ctx ends, and once more on the way out.
func (c *walCheckpointer) run(ctx context.Context, interval time.Duration) {
	defer c.files.close()
	every(ctx, interval, c.pass, func(err error) {
		if time.Since(c.warned) > time.Minute {
			c.warned = time.Now()
			c.logger.Warn("checkpoint SQLite write-ahead logs", slog.Any("error", err))
		}
	})
	_ = c.pass(context.Background())
}

// pass checkpoints every database file.
func (c *walCheckpointer) pass(ctx context.Context) error {
	if time.Since(c.scanned) >= walFileRescan {
		c.scanned = time.Now()
		if err := c.files.sync(); err != nil {
			return err
		}
	}
	var errs []error
	for f, db := range c.files.dbs {
		// The row is (busy, frames in the log, frames copied). Frames a reader still
		// needs are left for a later pass.
		var busy, logFrames, copied int
		if err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &copied); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Base(f), err))
		}
	}
	return errors.Join(errs...)
}
