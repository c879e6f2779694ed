package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/helmdesk/helmdesk/pkg/app/apptest"
)

// Socket upgrades skip otelhttp but keep their span: a server span named after the
// path, a child of the caller's trace when the request carries one, whose context
// the handler (and so the socket's logs) sees; other requests keep otelhttp's span.
func TestSocketUpgradesKeepTheirSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	rt := apptest.Runtime(t)
	rt.Tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	g := &Gateway{rt: rt}
	var seen []trace.SpanContext
	note := func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, trace.SpanContextFromContext(r.Context()))
		w.WriteHeader(http.StatusNoContent)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+customerSocketPath, note)
	mux.HandleFunc("GET "+agentSocketPath, func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, trace.SpanContextFromContext(r.Context()))
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /api/v1/sessions", note)
	h := g.instrument(mux)

	const remoteTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	get := func(path string, traceparent bool, want int) {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set("User-Agent", "widget/1.0")
		if traceparent {
			r.Header.Set("Traceparent", "00-"+remoteTrace+"-00f067aa0ba902b7-01")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Fatalf("%s: %d", path, w.Code)
		}
	}
	get(customerSocketPath, true, http.StatusNoContent)
	get(agentSocketPath, false, http.StatusServiceUnavailable)
	get("/api/v1/sessions", true, http.StatusNoContent)

	spans := rec.Ended()
	if len(spans) != 3 || len(seen) != 3 {
		t.Fatalf("%d spans ended and %d handler calls for 3 requests", len(spans), len(seen))
	}
	for i, s := range spans {
		if s.SpanContext().SpanID() != seen[i].SpanID() || !seen[i].IsValid() {
			t.Errorf("request %d: the handler saw span %v, the request's span is %v", i, seen[i], s.SpanContext())
		}
		if s.SpanKind() != trace.SpanKindServer {
			t.Errorf("request %d: span kind %v", i, s.SpanKind())
		}
	}
	sock, agentSock, rest := spans[0], spans[1], spans[2]
	if sock.Name() != "GET "+customerSocketPath || sock.SpanContext().TraceID().String() != remoteTrace || sock.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("customer socket span %q in trace %s, parent %s", sock.Name(), sock.SpanContext().TraceID(), sock.Parent().SpanID())
	}
	if agentSock.SpanContext().TraceID().String() == remoteTrace || agentSock.Parent().IsValid() {
		t.Errorf("a socket without a traceparent joined trace %s", agentSock.SpanContext().TraceID())
	}
	if agentSock.Status().Code != codes.Error {
		t.Errorf("a socket answered 503 has span status %v", agentSock.Status())
	}
	attrs := map[attribute.Key]string{}
	for _, a := range sock.Attributes() {
		attrs[a.Key] = a.Value.Emit()
	}
	if attrs["http.request.method"] != "GET" || attrs["url.path"] != customerSocketPath || attrs["user_agent.original"] != "widget/1.0" ||
		attrs["http.response.status_code"] != "204" {
		t.Errorf("socket span attributes %v", attrs)
	}
	if rest.Name() != "GET /api/v1/sessions" || rest.SpanContext().TraceID().String() != remoteTrace {
		t.Errorf("REST span %q in trace %s", rest.Name(), rest.SpanContext().TraceID())
	}
	var status bool
	for _, a := range rest.Attributes() {
		status = status || (a.Key == "http.response.status_code" && a.Value.AsInt64() == http.StatusNoContent)
	}
	if !status {
		t.Errorf("REST span lacks otelhttp's status attribute: %v", rest.Attributes())
	}
}
