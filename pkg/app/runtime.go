package app

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/helmdesk/helmdesk/pkg/logkey"
	"github.com/helmdesk/helmdesk/pkg/observability"
)

// Runtime is what a process gives each of its services.
type Runtime struct {
	Instance string // unique name of this process, e.g. the pod name
	Logger   *slog.Logger
	Tracer   trace.TracerProvider
	Metrics  *observability.Metrics
	Health   *Health
}

// For returns a copy of the runtime whose logger is tagged with the service name.
func (r *Runtime) For(service string) *Runtime {
	c := *r
	c.Logger = r.Logger.With(slog.String(logkey.Service, service))
	return &c
}

// Runner is anything with a blocking Run.
type Runner interface {
	Run(ctx context.Context) error
}

// RunnerFunc adapts a function to Runner.
type RunnerFunc func(ctx context.Context) error

// Run calls f.
func (f RunnerFunc) Run(ctx context.Context) error { return f(ctx) }
