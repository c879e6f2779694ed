package testdeps

import (
	"errors"
	"testing"

	"github.com/helmdesk/helmdesk/pkg/redisproc"
)

// Redis starts a real redis-server child process without persistence on a free port
// of 127.0.0.1, waits until it answers PING and returns its address. The process is
// killed at cleanup.
//
// It needs the redis-server binary in PATH (Debian package redis-server); without it
// the test fails.
func Redis(t testing.TB) string {
	t.Helper()
	s, err := redisproc.Start(t.TempDir(), "--save", "", "--appendonly", "no")
	if errors.Is(err, redisproc.ErrNotInstalled) {
		t.Fatalf("testdeps: redis-server not found (%v): run `make test`, which installs it, "+
			"or `apt-get install redis-server`", err)
	}
	if err != nil {
		t.Fatalf("testdeps: %v", err)
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("testdeps: redis-server on %s output:\n%s", s.Addr(), s.Output())
		}
	})
	return s.Addr()
}
