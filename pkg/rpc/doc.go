// Package rpc builds the gRPC servers and clients services use to talk to each other:
// OpenTelemetry spans (otelgrpc stats handlers), latency histograms by method and code,
// panic recovery, and the one mapping between fault errors and gRPC status codes
// (the fault's stable code travels as the status's ErrorInfo reason).
package rpc
