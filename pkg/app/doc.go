// Package app is the service lifecycle shared by every Helmdesk service: the Runtime
// a service is built with (logger, tracer, metrics, readiness checks), running
// components together in an errgroup until the context ends, HTTP servers that shut
// down gracefully, and the operational endpoints /metrics, /healthz and /readyz.
//
// A service follows Config → New(ctx, ...) → Run(ctx): New does all fallible setup and
// cleans up after itself when it fails half-way; Run blocks until ctx is done and
// returns after every goroutine it started has finished.
package app
