package devstack

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the driver FerretDB uses too
)

// sqliteFiles keeps one connection to each of FerretDB's database files in a
// directory, for the helpers that work on those files beside FerretDB (the _id
// indexer and the checkpointer).
type sqliteFiles struct {
	dir    string
	params string             // query parameters for new connections, besides mode=rw
	dbs    map[string]*sql.DB // file → connection
}

func newSQLiteFiles(dir, params string) *sqliteFiles {
	return &sqliteFiles{dir: dir, params: params, dbs: map[string]*sql.DB{}}
}

// sync connects to the database files that appeared and lets go of those that are gone
// (a dropped database), so that their disk space is not held.
func (s *sqliteFiles) sync() error {
	files, err := filepath.Glob(filepath.Join(s.dir, "*.sqlite"))
	if err != nil {
		return err
	}
	present := make(map[string]bool, len(files))
	for _, f := range files {
		present[f] = true
	}
	for f, db := range s.dbs {
		if !present[f] {
			_ = db.Close()
			delete(s.dbs, f)
		}
	}
	for _, f := range files {
		if s.dbs[f] != nil {
			continue
		}
		// mode=rw: never create a database file FerretDB has not created.
		q := "mode=rw"
		if s.params != "" {
			q += "&" + s.params
		}
		db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: f, RawQuery: q}).String())
		if err != nil {
			return err
		}
		db.SetMaxOpenConns(1)
		s.dbs[f] = db
	}
	return nil
}

func (s *sqliteFiles) close() {
	for f, db := range s.dbs {
		_ = db.Close()
		delete(s.dbs, f)
	}
}

// every runs pass now and then every interval until ctx ends, handing its errors to
// fail.
func every(ctx context.Context, interval time.Duration, pass func(context.Context) error, fail func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := pass(ctx); err != nil && ctx.Err() == nil {
			fail(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
