package devstack

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"
)

// FerretDB's SQLite backend keeps each collection in a table with one JSON column and
// looks documents up by _id with the expression _ferretdb_sjson->'$._id'. The unique
// index it creates for _id is on _ferretdb_sjson->"_id", which SQLite does not match to
// that expression, so every lookup, update and delete by _id scans the whole table:
// 10 ms at 1,500 sessions, and growing with the data. The indexer adds an index on
// the exact expression the queries use to every collection table, which makes those
// lookups take tens of microseconds. FerretDB does not know of these indexes (they are
// not listed to clients) and SQLite drops them with their table.

// idIndexInterval is how often the indexer looks for new collection tables.
const idIndexInterval = time.Second

const idIndexSuffix = "_hd_id_lookup"

type idIndexer struct {
	logger *slog.Logger
	files  *sqliteFiles
}

func newIDIndexer(dir string, logger *slog.Logger) *idIndexer {
	return &idIndexer{logger: logger, files: newSQLiteFiles(dir, "_pragma=busy_timeout(10000)")}
}

// run indexes new tables every interval until ctx ends.
func (x *idIndexer) run(ctx context.Context, interval time.Duration) {
	defer x.files.close()
	every(ctx, interval, x.pass, func(err error) { x.logger.Warn("index _id lookups", slog.Any("error", err)) })
}

// pass indexes every collection table that has no lookup index yet.
func (x *idIndexer) pass(ctx context.Context) error {
	if err := x.files.sync(); err != nil {
		return err
	}
	var errs []error
	for f, db := range x.files.dbs {
		if err := x.indexFile(ctx, db); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Base(f), err))
		}
	}
	return errors.Join(errs...)
}

func (x *idIndexer) indexFile(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT c.table_name FROM _ferretdb_collections c
		WHERE NOT EXISTS (SELECT 1 FROM sqlite_master m WHERE m.type = 'index' AND m.name = c.table_name || ?)`, idIndexSuffix)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil // FerretDB has not set this database up yet
		}
		return err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, t := range tables {
		start := time.Now()
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+idIndexSuffix, t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			if strings.Contains(err.Error(), "no such table") {
				continue // dropped meanwhile
			}
			return fmt.Errorf("index table %s: %w", t, err)
		}
		x.logger.Debug("indexed _id lookups", slog.String("table", t), slog.Duration("took", time.Since(start)))
	}
	return nil
}
