package testdeps

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/helmdesk/helmdesk/pkg/devstack"
)

// ferretStartMu serialises FerretDB starts: ferretdb.New writes a package
// variable of FerretDB, so two concurrent starts are a data race that
// `go test -race` reports in tests calling Mongo in parallel.
var ferretStartMu sync.Mutex

// Mongo starts an embedded FerretDB for this test and returns its mongodb://
// URI and a database name unique to the call. The server and its SQLite files
// are removed at cleanup.
//
// A server per call costs about 1 ms, less than sharing one would save, and
// keeps tests isolated; the unique database name keeps the contract the same
// should the server ever be shared.
func Mongo(t testing.TB) (uri, dbName string) {
	t.Helper()
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))

	ferretStartMu.Lock()
	m, err := devstack.StartMongo(t.Context(), dir, logger)
	ferretStartMu.Unlock()
	if err != nil {
		t.Fatalf("testdeps: start ferretdb: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("testdeps: close ferretdb: %v", err)
		}
	})
	return m.URI(), databaseName(t.Name())
}

// databaseName derives a valid, unique database name from a test name.
// FerretDB accepts [a-zA-Z0-9_-]{1,63}.
func databaseName(testName string) string {
	const maxPrefix = 63 - len("_12345678")
	var b strings.Builder
	for _, r := range testName {
		if b.Len() == maxPrefix {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return fmt.Sprintf("%s_%08x", b.String(), rand.Uint32())
}
