// Package observability holds the process-wide telemetry every Helmdesk service shares:
// the structured logger (slog, JSON, with the trace and span id of the request attached),
// the OpenTelemetry tracer provider (exporting over OTLP only when
// OTEL_EXPORTER_OTLP_ENDPOINT is set), and the cross-cutting Prometheus metrics
// (HTTP, gRPC, Kafka, MongoDB) registered once on the process registry.
package observability
