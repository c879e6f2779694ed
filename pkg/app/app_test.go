package app

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/observability"
)

func TestRunAllStopsEveryRunnerOnFirstError(t *testing.T) {
	stopped := make(chan struct{})
	boom := errors.New("boom")
	err := RunAll(context.Background(),
		RunnerFunc(func(ctx context.Context) error { <-ctx.Done(); close(stopped); return ctx.Err() }),
		RunnerFunc(func(context.Context) error { return boom }),
	)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("first runner was not stopped")
	}
}

func TestRunAllCancelIsClean(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := RunAll(ctx, RunnerFunc(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })); err != nil {
		t.Fatalf("err = %v, want nil on cancel", err)
	}
}

func TestOpsEndpoints(t *testing.T) {
	rt := &Runtime{Logger: observability.Discard(), Metrics: observability.NewMetrics(), Health: NewHealth()}
	failing := errors.New("mongodb down")
	var fail atomic.Bool
	rt.Health.AddCheck("mongodb", func(context.Context) error {
		if fail.Load() {
			return failing
		}
		return nil
	})
	mux := http.NewServeMux()
	rt.Mount(mux)
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := &HTTPServer{Name: "ops", Listener: ln, Handler: mux, Logger: rt.Logger}
	go func() { done <- srv.Run(ctx) }()
	base := "http://" + ln.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz = %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz = %d", code)
	}
	fail.Store(true)
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "mongodb") {
		t.Fatalf("readyz = %d %s, want 503 naming mongodb", code, body)
	}
	fail.Store(false)
	rt.Health.SetDraining()
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "draining") {
		t.Fatalf("readyz while draining = %d %s", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics = %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop")
	}
}
