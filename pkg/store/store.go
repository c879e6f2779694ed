package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/helmdesk/helmdesk/pkg/observability"
)

// Config says where MongoDB is.
type Config struct {
	URI         string
	Database    string
	MaxPoolSize uint64
	// Logger, when set, receives a warning for every command slower than SlowCommand.
	Logger      *slog.Logger
	SlowCommand time.Duration
}

// Connect opens a client, pings it and returns the database handle.
func Connect(ctx context.Context, cfg Config, m *observability.Metrics, tp trace.TracerProvider) (*mongo.Client, *mongo.Database, error) {
	pool := cfg.MaxPoolSize
	if pool == 0 {
		pool = 100
	}
	m.MongoPoolMax.Set(float64(pool))
	mon := &commandMonitor{tracer: tp.Tracer("github.com/helmdesk/helmdesk/pkg/store"), spans: map[int64]trace.Span{}, logger: cfg.Logger, slow: cfg.SlowCommand,
		probes: map[int64]slowProbe{}, commands: m.MongoCommands}
	opts := options.Client().ApplyURI(cfg.URI).
		SetMaxPoolSize(pool).
		SetServerSelectionTimeout(10 * time.Second).
		SetPoolMonitor(poolMonitor(m)).
		SetMonitor(&event.CommandMonitor{Started: mon.started, Succeeded: mon.succeeded, Failed: mon.failed})
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to mongodb: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := client.Ping(pctx, nil); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, nil, fmt.Errorf("ping mongodb: %w", err)
	}
	return client, client.Database(cfg.Database), nil
}

func poolMonitor(m *observability.Metrics) *event.PoolMonitor {
	return &event.PoolMonitor{Event: func(e *event.PoolEvent) {
		switch e.Type {
		case event.ConnectionCheckedOut:
			m.MongoPoolInUse.Inc()
		case event.ConnectionCheckedIn:
			m.MongoPoolInUse.Dec()
		case event.ConnectionCreated:
			m.MongoPoolOpen.Inc()
		case event.ConnectionClosed:
			m.MongoPoolOpen.Dec()
		}
	}}
}

// commandMonitor turns driver command events into client spans and a latency
// histogram by command and collection, and reports slow commands with the collection
// and filter keys (never values) they used.
type commandMonitor struct {
	tracer   trace.Tracer
	logger   *slog.Logger
	slow     time.Duration
	commands *prometheus.HistogramVec
	mu       sync.Mutex
	spans    map[int64]trace.Span
	probes   map[int64]slowProbe
}

type slowProbe struct {
	name, collection, shape string
}

func (c *commandMonitor) started(ctx context.Context, e *event.CommandStartedEvent) {
	probe := slowProbe{name: e.CommandName}
	if v, err := e.Command.LookupErr(e.CommandName); err == nil {
		probe.collection, _ = v.StringValueOK()
	}
	if probe.collection == "" {
		if v, err := e.Command.LookupErr("collection"); err == nil { // getMore
			probe.collection, _ = v.StringValueOK()
		}
	}
	if c.logger != nil && c.slow > 0 {
		for _, key := range []string{"filter", "q", "query", "sort"} {
			if v, err := e.Command.LookupErr(key); err == nil {
				if doc, ok := v.DocumentOK(); ok {
					if elems, err := doc.Elements(); err == nil {
						for _, el := range elems {
							probe.shape += key + "." + el.Key() + " "
						}
					}
				}
			}
		}
	}
	var span trace.Span
	if trace.SpanContextFromContext(ctx).IsValid() { // only commands of a traced operation
		_, span = c.tracer.Start(ctx, "mongodb "+e.CommandName, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system.name", "mongodb"), attribute.String("db.namespace", e.DatabaseName), attribute.String("db.operation.name", e.CommandName)))
	}
	c.mu.Lock()
	c.probes[e.RequestID] = probe
	if span != nil {
		c.spans[e.RequestID] = span
	}
	c.mu.Unlock()
}

func (c *commandMonitor) finish(id int64, d time.Duration, err string) {
	c.mu.Lock()
	span, ok := c.spans[id]
	delete(c.spans, id)
	probe, probed := c.probes[id]
	delete(c.probes, id)
	c.mu.Unlock()
	if probed && c.commands != nil {
		outcome := "ok"
		if err != "" {
			outcome = "error"
		}
		c.commands.WithLabelValues(probe.name, probe.collection, outcome).Observe(d.Seconds())
	}
	if probed && c.logger != nil && c.slow > 0 && d >= c.slow {
		c.logger.Warn("slow mongodb command", slog.String("command", probe.name), slog.String("collection", probe.collection),
			slog.String("shape", strings.TrimSpace(probe.shape)), slog.Duration("duration", d))
	}
	if !ok {
		return
	}
	if err != "" {
		span.SetStatus(codes.Error, err)
	}
	span.End()
}

func (c *commandMonitor) succeeded(_ context.Context, e *event.CommandSucceededEvent) {
	c.finish(e.RequestID, e.Duration, "")
}

func (c *commandMonitor) failed(_ context.Context, e *event.CommandFailedEvent) {
	c.finish(e.RequestID, e.Duration, e.Failure.Error())
}

// Index is an index to create on a collection.
type Index struct {
	Collection string
	Keys       bson.D
	Unique     bool
	Name       string
	// QueryOnly marks an index that only makes queries fast: any uniqueness it has is
	// implied by _id. FerretDB uses no index but _id's to answer a query, so there it
	// would only slow every write, and it is not created (and dropped if it exists).
	QueryOnly bool
}

// EnsureIndexes creates the indexes; existing ones are kept. On FerretDB, QueryOnly
// indexes are dropped instead, where an earlier version created them.
func EnsureIndexes(ctx context.Context, db *mongo.Database, indexes ...Index) error {
	skipQueryOnly := false
	if slices.ContainsFunc(indexes, func(ix Index) bool { return ix.QueryOnly }) {
		is, err := IsFerretDB(ctx, db.Client())
		if err != nil {
			return err
		}
		skipQueryOnly = is
	}
	existing := map[string]map[string]bool{} // collection → its index names, listed once
	for _, ix := range indexes {
		coll := db.Collection(ix.Collection)
		if ix.QueryOnly && skipQueryOnly {
			names, listed := existing[ix.Collection]
			if !listed {
				var err error
				if names, err = indexNames(ctx, coll); err != nil {
					return err
				}
				existing[ix.Collection] = names
			}
			if names[ix.name()] {
				if err := coll.Indexes().DropOne(ctx, ix.name()); err != nil {
					return fmt.Errorf("drop index %s of %s: %w", ix.name(), ix.Collection, err)
				}
			}
			continue
		}
		opts := options.Index().SetUnique(ix.Unique).SetName(ix.name())
		if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.Keys, Options: opts}); err != nil {
			return fmt.Errorf("create index on %s %v: %w", ix.Collection, ix.Keys, err)
		}
	}
	return nil
}

// name is the index's name: Name, or the name MongoDB gives it by default
// ("session_id_1_seq_1").
func (ix Index) name() string {
	if ix.Name != "" {
		return ix.Name
	}
	parts := make([]string, 0, 2*len(ix.Keys))
	for _, k := range ix.Keys {
		parts = append(parts, k.Key, fmt.Sprint(k.Value))
	}
	return strings.Join(parts, "_")
}

func indexNames(ctx context.Context, coll *mongo.Collection) (map[string]bool, error) {
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", coll.Name(), err)
	}
	names := make(map[string]bool, len(specs))
	for _, spec := range specs {
		names[spec.Name] = true
	}
	return names, nil
}

// IsFerretDB reports whether the server is FerretDB (which answers buildInfo with its
// own version besides the MongoDB version it emulates).
func IsFerretDB(ctx context.Context, c *mongo.Client) (bool, error) {
	var info bson.M
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false, fmt.Errorf("read server build info: %w", err)
	}
	_, ok := info["ferretdbVersion"]
	return ok, nil
}

// IsDuplicateKey reports whether err is (or contains) a unique-index violation.
func IsDuplicateKey(err error) bool { return mongo.IsDuplicateKeyError(err) }

// ErrNotFound is returned by lookups that match nothing.
var ErrNotFound = errors.New("not found")

// NotFound maps mongo.ErrNoDocuments to ErrNotFound and passes other errors through.
func NotFound(err error) error {
	if errors.Is(err, mongo.ErrNoDocuments) {
		return ErrNotFound
	}
	return err
}
