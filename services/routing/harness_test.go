package routing

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/helmdesk/helmdesk/pkg/app"
	"github.com/helmdesk/helmdesk/pkg/events"
	"github.com/helmdesk/helmdesk/pkg/observability"
	"github.com/helmdesk/helmdesk/pkg/rpc"
	"github.com/helmdesk/helmdesk/pkg/testdeps"
	eventsv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/events/v1"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
)

// env is one set of real dependencies (redis-server, FerretDB, kfake) that any
// number of routing replicas share.
type env struct {
	tb      testing.TB
	rdb     *redis.Client
	db      *mongo.Database
	brokers []string
	clock   *clock
}

// clock is a settable time source shared by the replicas of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	redisAddr := testdeps.Redis(tb)
	mongoURI, dbName := testdeps.Mongo(tb)
	brokers := testdeps.Kafka(tb)

	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: 64})
	tb.Cleanup(func() { _ = rdb.Close() })
	client, err := mongo.Connect(options.Client().ApplyURI(mongoURI))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := events.EnsureTopics(ctx, brokers, events.TopicSpec{Name: events.TopicRouting, Partitions: 1}); err != nil {
		tb.Fatal(err)
	}
	return &env{tb: tb, rdb: rdb, db: client.Database(dbName), brokers: brokers,
		clock: &clock{now: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}}
}

// replica starts one routing Service on the shared dependencies, with its own
// metrics registry and producer, using the env's clock.
func (e *env) replica(cfg Config) *Service {
	e.tb.Helper()
	rt := &app.Runtime{
		Instance: "routing-test",
		Logger:   slog.New(slog.NewTextHandler(testWriter{e.tb}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Tracer:   noop.NewTracerProvider(),
		Metrics:  observability.NewMetrics(),
		Health:   app.NewHealth(),
	}
	producer := events.NewProducer(e.brokers, rt.Metrics, rt.Tracer)
	e.tb.Cleanup(func() { _ = producer.Close() })
	s, err := New(context.Background(), cfg, Deps{Runtime: rt, Mongo: e.db, Redis: e.rdb, Producer: producer})
	if err != nil {
		e.tb.Fatal(err)
	}
	s.now = e.clock.Now
	return s
}

// client serves s over gRPC on loopback and returns a client of it, so that tests
// see exactly what callers see (status codes, fault codes).
func (e *env) client(s *Service) routingv1.RoutingServiceClient {
	e.tb.Helper()
	rt := s.deps.Runtime
	srv := rpc.NewServer(rt, nil)
	s.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.tb.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	e.tb.Cleanup(srv.Stop)
	conn, err := rpc.Dial(rt, ln.Addr().String(), nil)
	if err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(func() { _ = conn.Close() })
	return routingv1.NewRoutingServiceClient(conn)
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(p))
	return len(p), nil
}

// routedReader reads session_routed events from the routing topic in order.
type routedReader struct {
	tb testing.TB
	r  *kafka.Reader
}

func (e *env) routedEvents() *routedReader {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: events.TopicRouting, Partition: 0, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 50 * time.Millisecond})
	e.tb.Cleanup(func() { _ = r.Close() })
	return &routedReader{tb: e.tb, r: r}
}

// next reads n events, failing the test if they do not come within the timeout.
func (rr *routedReader) next(n int) []*eventsv1.SessionRouted {
	rr.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make([]*eventsv1.SessionRouted, 0, n)
	for len(out) < n {
		m, err := rr.r.ReadMessage(ctx)
		if err != nil {
			rr.tb.Fatalf("read session_routed event %d of %d: %v", len(out)+1, n, err)
		}
		env, err := events.Unmarshal(m.Value)
		if err != nil {
			rr.tb.Fatal(err)
		}
		if env.GetType() != events.TypeSessionRouted || env.GetSubject() == "" || env.GetSource() != Source {
			rr.tb.Fatalf("unexpected envelope %v", env)
		}
		ev := &eventsv1.SessionRouted{}
		if err := events.Payload(env, ev); err != nil {
			rr.tb.Fatal(err)
		}
		if ev.GetSessionId() != env.GetSubject() || string(m.Key) != ev.GetSessionId() {
			rr.tb.Fatalf("event subject %q / key %q do not match session %q", env.GetSubject(), m.Key, ev.GetSessionId())
		}
		out = append(out, ev)
	}
	return out
}

// none checks that no further event arrives within d.
func (rr *routedReader) none(d time.Duration) {
	rr.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if m, err := rr.r.ReadMessage(ctx); err == nil {
		rr.tb.Fatalf("unexpected event at offset %d", m.Offset)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		rr.tb.Fatal(err)
	}
}

// metricValue sums a metric family of the replica's registry: counter and gauge
// values, histogram sample counts.
func metricValue(tb testing.TB, s *Service, name string) float64 {
	tb.Helper()
	families, err := s.deps.Runtime.Metrics.Registry.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}
