package app

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health holds the readiness checks of a process. A process is live while it serves
// /healthz; it is ready when every check passes and it is not draining.
type Health struct {
	mu       sync.RWMutex
	checks   map[string]func(context.Context) error
	draining bool
}

// NewHealth returns an empty set of checks.
func NewHealth() *Health { return &Health{checks: map[string]func(context.Context) error{}} }

// AddCheck registers a readiness check under a name ("mongodb", "kafka").
func (h *Health) AddCheck(name string, check func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = check
}

// SetDraining marks the process as shutting down: /readyz fails from then on, so load
// balancers stop sending new work while existing work finishes.
func (h *Health) SetDraining() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.draining = true
}

// Check runs every check and returns the failures by name.
func (h *Health) Check(ctx context.Context) map[string]string {
	h.mu.RLock()
	checks := make(map[string]func(context.Context) error, len(h.checks))
	for k, v := range h.checks {
		checks[k] = v
	}
	draining := h.draining
	h.mu.RUnlock()
	failures := map[string]string{}
	if draining {
		failures["process"] = "draining"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, check := range checks {
		wg.Go(func() {
			if err := check(ctx); err != nil {
				mu.Lock()
				failures[name] = err.Error()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failures
}

// Mount adds /healthz, /readyz and /metrics to mux.
func (r *Runtime) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, req *http.Request) {
		failures := r.Health.Check(req.Context())
		w.Header().Set("Content-Type", "application/json")
		if len(failures) == 0 {
			_, _ = w.Write([]byte(`{"status":"ready"}`))
			return
		}
		names := make([]string, 0, len(failures))
		for n := range failures {
			names = append(names, n)
		}
		sort.Strings(names)
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "not_ready", "failing": names, "errors": failures})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.Metrics.Registry, promhttp.HandlerOpts{Registry: r.Metrics.Registry}))
}
