package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/helmdesk/helmdesk/pkg/app"
	"github.com/helmdesk/helmdesk/pkg/audit"
	"github.com/helmdesk/helmdesk/pkg/events"
	"github.com/helmdesk/helmdesk/pkg/groupcommit"
	"github.com/helmdesk/helmdesk/pkg/logkey"
	"github.com/helmdesk/helmdesk/pkg/observability"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
	sessionv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/session/v1"
	"github.com/helmdesk/helmdesk/services/session"
)

// Source is the event source name of this service.
const Source = "gateway"

// The sockets' paths, and the name of the gateway's own tracer.
const (
	customerSocketPath = "/api/v1/customer/ws"
	agentSocketPath    = "/api/v1/agent/ws"
	tracerName         = "github.com/helmdesk/helmdesk/services/gateway"
)

// Deps are the connections the gateway uses.
type Deps struct {
	Runtime  *app.Runtime
	Mongo    *mongo.Database
	Redis    *redis.Client
	Producer *events.Producer
	Sessions sessionv1.SessionServiceClient
	Routing  routingv1.RoutingServiceClient
	Audit    *audit.Log
}

// Gateway serves the public HTTP API and the sockets.
type Gateway struct {
	cfg      Config
	rt       *app.Runtime
	log      *slog.Logger
	identity *identity
	hub      *hub
	producer *events.Producer
	sessions sessionv1.SessionServiceClient
	routing  routingv1.RoutingServiceClient
	metrics  *metrics
	auditLog *audit.Log
	handler  http.Handler

	connSeq atomic.Uint64

	setups    chan struct{} // socket setup slots (see openSocket)
	setupWait time.Duration
	greetings *groupcommit.Group[string, *sessionv1.Session] // customer sockets' session reads (see greet)

	mu       sync.Mutex
	sockets  map[*socket]struct{}
	shutting bool
}

type metrics struct {
	wsConnections   *prometheus.GaugeVec
	messagesIn      *prometheus.CounterVec
	messagesOut     *prometheus.CounterVec
	acceptDuration  prometheus.Histogram
	deliveryLatency *prometheus.HistogramVec
	wsErrors        *prometheus.CounterVec
	resumes         *prometheus.CounterVec
	setupWait       prometheus.Histogram
	setupSteps      setupSteps
	auditFailures   prometheus.Counter
}

// setupSteps time the steps of an opening socket while it holds its setup slot.
type setupSteps struct {
	authenticate, subscribe, presence, greet prometheus.Observer
}

// New prepares the gateway.
func New(ctx context.Context, cfg Config, deps Deps) (*Gateway, error) {
	id, err := newIdentity(ctx, deps.Mongo, deps.Redis, cfg.UserIdleTimeout)
	if err != nil {
		return nil, err
	}
	f := promauto.With(deps.Runtime.Metrics.Registry)
	g := &Gateway{
		cfg: cfg, rt: deps.Runtime, log: deps.Runtime.Logger, identity: id,
		hub: newHub(deps.Redis, deps.Runtime.Logger), producer: deps.Producer,
		sessions: deps.Sessions, routing: deps.Routing, sockets: map[*socket]struct{}{}, auditLog: deps.Audit,
		setups: make(chan struct{}, max(cfg.SocketSetups, 1)), setupWait: max(cfg.SocketSetupWait, time.Second),
		metrics: &metrics{
			wsConnections:   f.NewGaugeVec(prometheus.GaugeOpts{Name: "helmdesk_gateway_websocket_connections", Help: "Open WebSockets by kind (customer, agent)."}, []string{"kind"}),
			setupWait:       f.NewHistogram(prometheus.HistogramOpts{Name: "helmdesk_gateway_socket_setup_wait_seconds", Help: "Time a socket request waited for its turn to open (see --socket-setups).", Buckets: observability.LatencyBuckets}),
			resumes:         f.NewCounterVec(prometheus.CounterOpts{Name: "helmdesk_gateway_resumes_total", Help: "Resumes of a session by path: current (the client already had every message the greeting knew of; no history read) or replay."}, []string{"path"}),
			messagesIn:      f.NewCounterVec(prometheus.CounterOpts{Name: "helmdesk_gateway_messages_in_total", Help: "Messages accepted from sockets and durable in Kafka, by sender type."}, []string{"sender"}),
			messagesOut:     f.NewCounterVec(prometheus.CounterOpts{Name: "helmdesk_gateway_messages_out_total", Help: "Live message frames written to sockets, by recipient kind."}, []string{"recipient"}),
			acceptDuration:  f.NewHistogram(prometheus.HistogramOpts{Name: "helmdesk_gateway_accept_duration_seconds", Help: "Time to make a message sent on a socket durable in Kafka.", Buckets: observability.LatencyBuckets}),
			deliveryLatency: f.NewHistogramVec(prometheus.HistogramOpts{Name: "helmdesk_gateway_delivery_latency_seconds", Help: "From a gateway accepting a message to a gateway writing it to the recipient's socket.", Buckets: observability.LatencyBuckets}, []string{"recipient"}),
			wsErrors:        f.NewCounterVec(prometheus.CounterOpts{Name: "helmdesk_gateway_websocket_errors_total", Help: "Error frames sent to sockets, by code."}, []string{"code"}),
			auditFailures:   f.NewCounter(prometheus.CounterOpts{Name: "helmdesk_gateway_audit_failures_total", Help: "Audit entries that could not be appended (each is also logged)."}),
		},
	}
	steps := f.NewHistogramVec(prometheus.HistogramOpts{Name: "helmdesk_gateway_socket_setup_step_seconds",
		Help:    "Time an opening socket spends in each step of its setup while it holds a setup slot: authenticate (its token), subscribe (until Redis confirms its fan-out channel), presence (an agent's console recorded as connected), greet (reading where its sessions stand). With the wait for a slot, where a reconnect storm's time goes.",
		Buckets: observability.LatencyBuckets}, []string{"step"})
	g.metrics.setupSteps = setupSteps{authenticate: steps.WithLabelValues("authenticate"), subscribe: steps.WithLabelValues("subscribe"),
		presence: steps.WithLabelValues("presence"), greet: steps.WithLabelValues("greet")}
	g.greetings = &groupcommit.Group[string, *sessionv1.Session]{Write: g.readSummaries, Max: session.MaxSummaries}
	g.handler = g.routes()
	return g, nil
}

// Handler is the gateway's HTTP handler (API, sockets, health and metrics).
func (g *Gateway) Handler() http.Handler { return g.handler }

// Run runs the fan-out hub, the revocation listener and the writer of sign-ins'
// last-used times until ctx is done.
func (g *Gateway) Run(ctx context.Context) error {
	return app.RunAll(ctx, g.hub, app.RunnerFunc(g.listenForRevocations), app.RunnerFunc(g.purgeAudit),
		app.RunnerFunc(func(ctx context.Context) error { return g.identity.writeTouches(ctx, g.log) }))
}

// purgeAudit removes audit entries past their retention, at start and every 6 hours.
// Purging is safe from several replicas at once.
func (g *Gateway) purgeAudit(ctx context.Context) error {
	t := time.NewTicker(6 * time.Hour)
	defer t.Stop()
	for {
		if res, err := g.auditLog.Purge(ctx); err != nil && ctx.Err() == nil {
			g.log.ErrorContext(ctx, "purge audit log", slog.Any(logkey.Error, err))
		} else if err == nil && res.Deleted > 0 {
			g.log.InfoContext(ctx, "purged audit log", slog.Int64(logkey.Count, res.Deleted))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

var (
	errShuttingDown = errors.New("gateway shutting down")
	errRevoked      = errors.New("credentials revoked")
)

func (g *Gateway) track(s *socket) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shutting {
		return false
	}
	g.sockets[s] = struct{}{}
	return true
}

func (g *Gateway) untrack(s *socket) {
	g.mu.Lock()
	delete(g.sockets, s)
	g.mu.Unlock()
}

// CloseSockets ends every socket with a close frame that tells the client to
// reconnect and resume (hijacked connections are not closed by http.Server.Shutdown).
func (g *Gateway) CloseSockets() {
	g.mu.Lock()
	g.shutting = true
	list := make([]*socket, 0, len(g.sockets))
	for s := range g.sockets {
		list = append(list, s)
	}
	g.mu.Unlock()
	for _, s := range list {
		s.cancel(errShuttingDown)
	}
}

// statusRecorder captures the response status for metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// instrument records latency by route pattern and traces the request.
//
// Socket upgrades get a lighter trace than otelhttp's: a server span started
// directly (the trace context extracted only when the request carries one), its
// attributes set only when the span is recorded. otelhttp wraps the response
// writer and the body, computes its attributes and looks for trace headers on
// every request; after a gateway restart every client reconnects at once, and in
// a profile of that storm this work, with the stack growth its frames cause, was
// 15% of the restarted gateway's CPU (docs/benchmarks.md). The span's ids, which
// the socket's logs carry, and the latency metric by route are unchanged.
func (g *Gateway) instrument(mux *http.ServeMux) http.Handler {
	// serve routes the request, records its latency and returns its status.
	serve := func(w http.ResponseWriter, r *http.Request) int {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		mux.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		if rec.status == 0 {
			rec.status = http.StatusSwitchingProtocols // hijacked by a WebSocket
		}
		g.rt.Metrics.HTTPRequestDuration.WithLabelValues(route, r.Method, strconv.Itoa(rec.status)).Observe(time.Since(start).Seconds())
		return rec.status
	}
	traced := otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serve(w, r) }), "http",
		otelhttp.WithTracerProvider(g.rt.Tracer), otelhttp.WithPropagators(observability.Propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
	tracer := g.rt.Tracer.Tracer(tracerName)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || (r.URL.Path != customerSocketPath && r.URL.Path != agentSocketPath) {
			traced.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		if r.Header.Get("Traceparent") != "" || r.Header.Get("Baggage") != "" {
			ctx = observability.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
		}
		ctx, span := tracer.Start(ctx, r.Method+" "+r.URL.Path, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		status := serve(w, r.WithContext(ctx))
		if !span.IsRecording() {
			return
		}
		span.SetAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
			attribute.String("user_agent.original", r.UserAgent()), attribute.String("client.address", r.RemoteAddr),
			attribute.Int("http.response.status_code", status))
		if status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	})
}
