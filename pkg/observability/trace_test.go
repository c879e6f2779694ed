package observability

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestSpansWithoutAnExporterAreNotRecordedButKeepTheirIDs(t *testing.T) {
	tp, err := NewTracerProvider(context.Background(), "test", "i1", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tp.Shutdown(context.Background()) }()
	var buf bytes.Buffer
	logger, err := NewLogger(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	defer parent.End()
	cctx, child := tp.Tracer("test").Start(ctx, "child")
	defer child.End()
	if parent.IsRecording() || child.IsRecording() {
		t.Fatal("spans are recorded though nothing exports them")
	}
	psc, csc := parent.SpanContext(), child.SpanContext()
	if !psc.IsValid() || !csc.IsValid() {
		t.Fatalf("span contexts invalid: %v %v", psc, csc)
	}
	if csc.TraceID() != psc.TraceID() || csc.SpanID() == psc.SpanID() {
		t.Fatalf("child %s/%s does not continue parent %s/%s", csc.TraceID(), csc.SpanID(), psc.TraceID(), psc.SpanID())
	}
	logger.InfoContext(cctx, "hello")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["trace_id"] != psc.TraceID().String() || rec["span_id"] != csc.SpanID().String() {
		t.Fatalf("log has trace_id %v span_id %v, want %s %s", rec["trace_id"], rec["span_id"], psc.TraceID(), csc.SpanID())
	}

	// A remote parent's trace continues, unrecorded even though the parent was sampled.
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: psc.TraceID(), SpanID: psc.SpanID(), TraceFlags: trace.FlagsSampled, Remote: true})
	_, s := tp.Tracer("test").Start(trace.ContextWithRemoteSpanContext(context.Background(), remote), "server")
	defer s.End()
	if s.IsRecording() || s.SpanContext().TraceID() != psc.TraceID() {
		t.Fatalf("span under a remote parent: recording %v, trace %s", s.IsRecording(), s.SpanContext().TraceID())
	}
}

func TestSpansAreRecordedWhenExported(t *testing.T) {
	for _, key := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Run(key, func(t *testing.T) {
			// The exporter takes its endpoint from the process environment and
			// connects lazily; the shutdown below gives up on the export.
			tp, err := NewTracerProvider(context.Background(), "test", "i1", env(map[string]string{key: "http://127.0.0.1:1"}))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				_ = tp.Shutdown(ctx)
			}()
			_, span := tp.Tracer("test").Start(context.Background(), "op")
			defer span.End()
			if !span.IsRecording() || !span.SpanContext().IsSampled() {
				t.Fatalf("span recording %v sampled %v, want both", span.IsRecording(), span.SpanContext().IsSampled())
			}
		})
	}
}

// BenchmarkSpan is a span as the message path makes them: started with a few
// attributes, ended. "recorded" is the same span recorded with nothing to export it.
func BenchmarkSpan(b *testing.B) {
	unexported, err := NewTracerProvider(context.Background(), "bench", "i1", env(nil))
	if err != nil {
		b.Fatal(err)
	}
	recorded := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	for _, tc := range []struct {
		name string
		tp   trace.TracerProvider
	}{{"unexported", unexported}, {"recorded", recorded}} {
		b.Run(tc.name, func(b *testing.B) {
			tr := tc.tp.Tracer("bench")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, span := tr.Start(ctx, "kafka publish", trace.WithSpanKind(trace.SpanKindProducer),
					trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", "helmdesk.inbound"), attribute.Int("messaging.batch.message_count", 1)))
				span.End()
			}
		})
	}
}
