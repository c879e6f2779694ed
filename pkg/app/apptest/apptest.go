// Package apptest builds app.Runtime values for tests: logs go to the test log,
// metrics to a fresh registry, spans to an in-process provider.
package apptest

import (
	"log/slog"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/helmdesk/helmdesk/pkg/app"
	"github.com/helmdesk/helmdesk/pkg/observability"
)

// Runtime returns a runtime whose logger writes warnings and errors to t.
func Runtime(t testing.TB) *app.Runtime {
	t.Helper()
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return &app.Runtime{
		Instance: "test",
		Logger:   slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Tracer:   sdktrace.NewTracerProvider(),
		Metrics:  observability.NewMetrics(),
		Health:   app.NewHealth(),
	}
}

// testWriter forwards to the test log until the test ends (background goroutines
// may still log while shutting down; t.Log would panic then).
type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(string(p))
	}
	return len(p), nil
}
