package target

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A process whose port was taken between choosing and binding it is started again
// on a fresh port; a process failing for another reason is not.
func TestRunFreshRetriesOnlyAPortClash(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	ready := "http://" + ln.Addr().String() + "/"

	var lines []string
	c := &Cluster{LogDir: t.TempDir(), opts: Options{Binary: "/bin/sh", ReadyTimeout: 10 * time.Second,
		Logf: func(f string, a ...any) { lines = append(lines, f) }}}
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.stop(time.Second)
		}
	})
	attempts := 0
	// The first attempt fails as a taken port does; the second serves.
	err = c.runFresh(context.Background(), func() (*Process, error) {
		attempts++
		script := "echo 'listen tcp 127.0.0.1:1: bind: address already in use' >&2; exit 2"
		url := "http://127.0.0.1:1/"
		if attempts == 2 {
			script, url = "sleep 30", ready
		}
		return c.newProcess("svc", []string{"-c", script}, nil, url), nil
	})
	if err != nil || attempts != 2 {
		t.Fatalf("runFresh = %v after %d attempts, want success on the second", err, attempts)
	}
	if len(c.procs) != 1 || c.Process("svc") == nil || c.Process("svc").PID() == 0 {
		t.Fatalf("processes kept: %d, want only the one that started", len(c.procs))
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "taken") {
		t.Fatalf("status lines %q", lines)
	}

	other := &Cluster{LogDir: t.TempDir(), opts: Options{Binary: "/bin/sh", ReadyTimeout: 10 * time.Second}}
	attempts = 0
	err = other.runFresh(context.Background(), func() (*Process, error) {
		attempts++
		return other.newProcess("bad"+strconv.Itoa(attempts), []string{"-c", "echo 'invalid setting' >&2; exit 2"}, nil, "http://127.0.0.1:1/"), nil
	})
	if err == nil || attempts != 1 {
		t.Fatalf("a start failing for another reason: %v after %d attempts, want one failed attempt", err, attempts)
	}
}
