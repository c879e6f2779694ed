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
// that expression, so every lookup, update and delete by _id would scan the whole
// table: 10 ms at 1,500 sessions, and growing with the data. Both expressions name the
// same member and yield the same value, so the indexer rebuilds FerretDB's _id index,
// under the same name and just as unique, on the expression the queries use. Lookups
// by _id then take tens of microseconds, and every write keeps one _id index up to
// date, not two. FerretDB keeps the index in its metadata by name, so listing,
// dropping a collection and dropping indexes work as before; a duplicate _id still
// fails the insert with SQLite's unique-constraint error, which FerretDB reports as a
// duplicate key.
//
// Data directories written before this kept FerretDB's index and added a second,
// non-unique one (idIndexLegacySuffix); the indexer drops that when it rebuilds.

// idIndexInterval is how often the indexer looks for new collection tables.
const idIndexInterval = time.Second

const (
	// idIndexSuffix completes FerretDB's SQLite name for a collection's _id index:
	// the table's name, an underscore, then the index's name, "_id_".
	idIndexSuffix       = "__id_"
	idIndexLegacySuffix = "_hd_id_lookup"
	idLookupExpr        = `_ferretdb_sjson->'$._id'`
)

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

// pass rebuilds the _id index of every collection table whose index is still on
// FerretDB's expression.
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
	// Only tables whose _id index exists: FerretDB creates a collection's table and
	// then its index, in two statements.
	rows, err := db.QueryContext(ctx, `SELECT c.table_name FROM _ferretdb_collections c
		JOIN sqlite_master m ON m.type = 'index' AND m.name = c.table_name || ?
		WHERE instr(m.sql, ?) = 0`, idIndexSuffix, idLookupExpr)
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
		if err := rebuildIDIndex(ctx, db, t); err != nil {
			if strings.Contains(err.Error(), "no such table") || strings.Contains(err.Error(), "no such index") {
				continue // dropped meanwhile
			}
			return fmt.Errorf("index table %s: %w", t, err)
		}
		x.logger.Debug("indexed _id lookups", slog.String("table", t), slog.Duration("took", time.Since(start)))
	}
	return nil
}

// rebuildIDIndex replaces table's _id index in one transaction, so that no write
// ever sees the table without a unique _id.
func rebuildIDIndex(ctx context.Context, db *sql.DB, table string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for _, q := range []string{
		fmt.Sprintf(`DROP INDEX %q`, table+idIndexSuffix),
		fmt.Sprintf(`CREATE UNIQUE INDEX %q ON %q (%s)`, table+idIndexSuffix, table, idLookupExpr),
		fmt.Sprintf(`DROP INDEX IF EXISTS %q`, table+idIndexLegacySuffix),
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return tx.Commit()
}
