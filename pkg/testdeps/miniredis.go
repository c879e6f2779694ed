package testdeps

import (
	"testing"

	"github.com/alicebob/miniredis/v2"
)

// MiniRedis starts an embedded miniredis on 127.0.0.1 and returns its
// address; it is closed at cleanup. Prefer [Redis] unless a test explicitly
// wants the embedded server (for example to run where redis-server cannot).
//
// TTLs run on the wall clock (miniredis's ClockTTL mode), as in Redis; by
// default miniredis would only expire keys on FastForward.
func MiniRedis(t testing.TB) string {
	t.Helper()
	mr := miniredis.NewMiniRedis()
	mr.ClockTTL(true)
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		t.Fatalf("testdeps: start miniredis: %v", err)
	}
	t.Cleanup(mr.Close)
	return mr.Addr()
}
