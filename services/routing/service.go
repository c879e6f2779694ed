package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/helmdesk/helmdesk/pkg/app"
	"github.com/helmdesk/helmdesk/pkg/events"
	"github.com/helmdesk/helmdesk/pkg/logkey"
	"github.com/helmdesk/helmdesk/pkg/observability"
	eventsv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/events/v1"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
	"github.com/helmdesk/helmdesk/services/routing/internal/dispatch"
	"github.com/helmdesk/helmdesk/services/routing/internal/rules"
)

// Source is the event source name of this service.
const Source = "routing"

// Deps are the connections the service uses.
type Deps struct {
	Runtime  *app.Runtime
	Mongo    *mongo.Database
	Redis    *redis.Client
	Producer *events.Producer
}

// Service is the routing service. It keeps no state of its own between calls: every
// replica works on the same Redis board and MongoDB collections.
type Service struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	repo     *repo
	board    *dispatch.Board
	engine   *rules.Engine
	metrics  *metrics
	now      func() time.Time
	overflow bool

	rulesMu sync.Mutex // serialises reloads of the rules
	current struct {
		sync.RWMutex
		rules *ruleState
	}
	queueGroups map[string]bool // groups whose queue gauge was set (sweep goroutine only)
}

// ruleState is a compiled version of the rules.
type ruleState struct {
	version   int64
	set       *rules.Set
	updatedAt time.Time
	updatedBy string
}

type metrics struct {
	assignments  *prometheus.CounterVec   // result
	assignTime   prometheus.Histogram     //
	queueLength  *prometheus.GaugeVec     // group
	queueWait    *prometheus.HistogramVec // group
	agentsOnline prometheus.Gauge
	overflows    prometheus.Counter
	autoAway     prometheus.Counter
}

// Queue wait buckets: 1 s to 30 min.
var waitBuckets = []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		assignments: f.NewCounterVec(prometheus.CounterOpts{Name: "helmdesk_routing_assignments_total",
			Help: "Routing decisions by result: assigned (an agent at once), queued (waits), routed_from_queue (a waiting session got an agent)."}, []string{"result"}),
		assignTime: f.NewHistogram(prometheus.HistogramOpts{Name: "helmdesk_routing_assign_duration_seconds",
			Help: "Latency of Assign: rule evaluation and the atomic reservation or enqueue.", Buckets: observability.LatencyBuckets}),
		queueLength: f.NewGaugeVec(prometheus.GaugeOpts{Name: "helmdesk_routing_queue_length",
			Help: "Sessions waiting per group (\"*\" is the queue for every agent), cluster-wide."}, []string{"group"}),
		queueWait: f.NewHistogramVec(prometheus.HistogramOpts{Name: "helmdesk_routing_queue_wait_seconds",
			Help: "Time sessions waited in a queue before getting an agent, by group.", Buckets: waitBuckets}, []string{"group"}),
		agentsOnline: f.NewGauge(prometheus.GaugeOpts{Name: "helmdesk_routing_agents_online", Help: "Agents online, cluster-wide."}),
		overflows:    f.NewCounter(prometheus.CounterOpts{Name: "helmdesk_routing_queue_overflows_total", Help: "Sessions moved to the overflow group's queue after waiting too long."}),
		autoAway:     f.NewCounter(prometheus.CounterOpts{Name: "helmdesk_routing_presence_auto_away_total", Help: "Online agents made away because their console sockets stayed closed for the grace period."}),
	}
}

// groupLabel is the metric label of a group ("" is every agent).
func groupLabel(g string) string {
	if g == "" {
		return "*"
	}
	return g
}

// New prepares the service: MongoDB indexes, Lua scripts, the rules in force and
// the metrics.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("routing config: %w", err)
	}
	if deps.Runtime == nil || deps.Mongo == nil || deps.Redis == nil || deps.Producer == nil {
		return nil, errors.New("routing: Runtime, Mongo, Redis and Producer are required")
	}
	loc, err := time.LoadLocation(cfg.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("routing time zone: %w", err)
	}
	engine, err := rules.NewEngine(loc)
	if err != nil {
		return nil, err
	}
	r, err := newRepo(ctx, deps.Mongo)
	if err != nil {
		return nil, fmt.Errorf("prepare routing storage: %w", err)
	}
	board := dispatch.New(deps.Redis, cfg.RedisPrefix)
	if err := board.Load(ctx); err != nil {
		return nil, err
	}
	s := &Service{
		cfg:         cfg,
		deps:        deps,
		log:         deps.Runtime.Logger,
		repo:        r,
		board:       board,
		engine:      engine,
		metrics:     newMetrics(deps.Runtime.Metrics.Registry),
		now:         time.Now,
		overflow:    cfg.QueueOverflowAfter > 0,
		queueGroups: map[string]bool{},
	}
	if _, err := s.reloadRules(ctx); err != nil {
		return nil, err
	}
	if s.overflow && cfg.QueueOverflowGroup != "" {
		if missing, err := r.missingGroups(ctx, []string{cfg.QueueOverflowGroup}); err == nil && len(missing) > 0 {
			s.log.WarnContext(ctx, "queue overflow group does not exist yet: overflowing sessions wait there until an agent joins it",
				slog.String(logkey.Group, cfg.QueueOverflowGroup))
		}
	}
	return s, nil
}

// Register registers the RoutingService gRPC server.
func (s *Service) Register(srv *grpc.Server) {
	routingv1.RegisterRoutingServiceServer(srv, &grpcServer{s: s})
}

// Run does the background work until ctx is done: presence grace sweeps, queue
// overflow, queue drains that a crashed replica left undone, redelivery of
// session_routed events and the queue gauges. Every replica runs it; each step is
// an atomic script, so running it on several replicas at once is safe.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		s.sweep(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

const (
	sweepLimit = 500 // items per sweep step
	drainBatch = 100 // sessions per drain script call
)

func (s *Service) sweep(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	now := s.now()
	warn := func(what string, err error) {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, what, slog.Any(logkey.Error, err))
		}
	}
	away, err := s.board.SweepPresence(ctx, now, s.cfg.PresenceGrace, sweepLimit)
	if err != nil {
		warn("sweep agent presence", err)
	}
	for _, id := range away {
		s.metrics.autoAway.Inc()
		s.log.InfoContext(ctx, "agent away: console disconnected", slog.String(logkey.AgentID, id))
	}
	if s.overflow {
		moved, err := s.board.Overflow(ctx, now.Add(-s.cfg.QueueOverflowAfter), s.cfg.QueueOverflowGroup, sweepLimit)
		if err != nil {
			warn("overflow queues", err)
		}
		if len(moved) > 0 {
			s.metrics.overflows.Add(float64(len(moved)))
			s.log.InfoContext(ctx, "sessions overflowed", slog.String(logkey.Group, s.cfg.QueueOverflowGroup), slog.Int(logkey.Count, len(moved)))
		}
	}
	s.drain(ctx, nil)
	if recs, err := s.board.Reclaim(ctx, now, s.cfg.OutboxLease, sweepLimit); err != nil {
		warn("reclaim routed sessions", err)
	} else if len(recs) > 0 {
		s.log.InfoContext(ctx, "republishing routed sessions", slog.Int(logkey.Count, len(recs)))
		if err := s.publish(ctx, recs); err != nil {
			warn("republish routed sessions", err)
		}
	}
	s.refreshGauges(ctx)
}

func (s *Service) refreshGauges(ctx context.Context) {
	if n, err := s.board.OnlineAgents(ctx); err == nil {
		s.metrics.agentsOnline.Set(float64(n))
	}
	queues, err := s.board.Queues(ctx)
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for _, q := range queues {
		label := groupLabel(q.Group)
		seen[label] = true
		s.queueGroups[label] = true
		s.metrics.queueLength.WithLabelValues(label).Set(float64(q.Length))
	}
	for label := range s.queueGroups {
		if !seen[label] {
			s.metrics.queueLength.WithLabelValues(label).Set(0)
		}
	}
}

// drain assigns waiting sessions of the groups (all when nil) to free agents and
// publishes a session_routed event for each. Failures are logged: whatever was
// claimed but not published is republished by a later sweep.
func (s *Service) drain(ctx context.Context, groups []string) {
	// The work is shared state: finish it even when the caller's request is cancelled.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for range 1000 {
		routed, err := s.board.Drain(ctx, groups, s.now(), drainBatch, s.cfg.OutboxLease)
		if err != nil {
			s.log.WarnContext(ctx, "drain queues", slog.Any(logkey.Error, err))
			return
		}
		for _, r := range routed {
			s.metrics.assignments.WithLabelValues("routed_from_queue").Inc()
			s.metrics.queueWait.WithLabelValues(groupLabel(r.Group)).Observe(max(r.RoutedAt.Sub(r.EnqueuedAt), 0).Seconds())
		}
		if err := s.publish(ctx, routed); err != nil {
			s.log.WarnContext(ctx, "publish routed sessions; a sweep will retry", slog.Any(logkey.Error, err))
		}
		if len(routed) < drainBatch {
			return
		}
	}
}

// publish sends a session_routed event per routed session and then removes them from
// the outbox.
func (s *Service) publish(ctx context.Context, routed []dispatch.Routed) error {
	if len(routed) == 0 {
		return nil
	}
	records := make([]events.Record, 0, len(routed))
	for _, r := range routed {
		env, err := events.NewEnvelope(events.TypeSessionRouted, Source, r.SessionID, &eventsv1.SessionRouted{
			SessionId: r.SessionID, AgentId: r.AgentID, Group: r.Group, RoutedAt: timestamppb.New(r.RoutedAt),
		})
		if err != nil {
			return err
		}
		records = append(records, events.Record{Topic: events.TopicRouting, Envelope: env})
	}
	if err := s.deps.Producer.Publish(ctx, records...); err != nil {
		return err
	}
	for _, r := range routed {
		s.log.DebugContext(ctx, "queued session routed", slog.String(logkey.SessionID, r.SessionID), slog.String(logkey.AgentID, r.AgentID), slog.String(logkey.Group, r.Group))
	}
	return s.board.Ack(ctx, routed)
}

// rules returns the rules this replica last loaded.
func (s *Service) rules() *ruleState {
	s.current.RLock()
	defer s.current.RUnlock()
	return s.current.rules
}

// reloadRules loads the newest rules from MongoDB, makes them the version in force
// on the board (Redis may have lost it) and caches them.
func (s *Service) reloadRules(ctx context.Context) (*ruleState, error) {
	s.rulesMu.Lock()
	defer s.rulesMu.Unlock()
	inForce, err := s.board.RulesVersion(ctx)
	if err != nil {
		return nil, err
	}
	if cur := s.rules(); cur != nil && cur.version == inForce && inForce != 0 {
		return cur, nil // another caller reloaded meanwhile
	}
	latest, err := s.repo.latestRules(ctx)
	if err != nil {
		return nil, err
	}
	set, err := s.engine.Compile(latest.rules())
	if err != nil {
		// Stored rules were valid when stored; an engine change broke them. Route by
		// default rather than not at all, and say so loudly.
		s.log.ErrorContext(ctx, "stored routing rules no longer compile; routing round robin to everyone", slog.Int64("rules_version", latest.Version), slog.Any(logkey.Error, err))
		set = nil
	}
	st := &ruleState{version: latest.Version, set: set, updatedAt: latest.UpdatedAt, updatedBy: latest.UpdatedBy}
	if _, err := s.board.RaiseRulesVersion(ctx, latest.Version); err != nil {
		return nil, err
	}
	s.current.Lock()
	s.current.rules = st
	s.current.Unlock()
	return st, nil
}
