package observability

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// Propagator is the W3C trace-context propagator used over HTTP, gRPC and Kafka headers.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// NewTracerProvider returns a tracer provider that always creates spans (so logs carry
// trace ids) and exports them over OTLP/gRPC only when OTEL_EXPORTER_OTLP_ENDPOINT is
// set in the environment read by getenv. The exporter itself reads the standard OTEL_*
// variables.
func NewTracerProvider(ctx context.Context, serviceName, instance string, getenv func(string) string) (*sdktrace.TracerProvider, error) {
	res := resource.NewSchemaless(semconv.ServiceName(serviceName), semconv.ServiceInstanceID(instance))
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	}
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		exp, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("create otlp trace exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}
