package platform

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/helmdesk/helmdesk/pkg/app"
	"github.com/helmdesk/helmdesk/pkg/audit"
	"github.com/helmdesk/helmdesk/pkg/auth"
	"github.com/helmdesk/helmdesk/pkg/cache"
	"github.com/helmdesk/helmdesk/pkg/events"
	"github.com/helmdesk/helmdesk/pkg/logkey"
	"github.com/helmdesk/helmdesk/pkg/observability"
	"github.com/helmdesk/helmdesk/pkg/rpc"
	"github.com/helmdesk/helmdesk/pkg/store"
	"github.com/helmdesk/helmdesk/pkg/tlsconfig"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
	sessionv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/session/v1"
	"github.com/helmdesk/helmdesk/services/gateway"
	"github.com/helmdesk/helmdesk/services/routing"
	"github.com/helmdesk/helmdesk/services/session"
)

// Platform is a process with its services set up and ready to run.
type Platform struct {
	cfg      Config
	services []string
	rt       *app.Runtime
	tp       *sdktrace.TracerProvider
	mongo    *mongo.Client
	redis    *redis.Client
	producer *events.Producer
	conns    []*grpc.ClientConn

	grpcServer *grpc.Server
	grpcLn     net.Listener
	httpLn     net.Listener
	handler    http.Handler
	gateway    *gateway.Gateway
	runners    []app.Runner
	secrets    Secrets
	tls        *tls.Config
}

// New connects to the dependencies and builds the selected services. On error,
// whatever it opened is closed again.
func New(ctx context.Context, cfg Config, services []string, logOut io.Writer, getenv func(string) string) (_ *Platform, err error) {
	services, err = Select(services)
	if err != nil {
		return nil, err
	}
	logger, err := observability.NewLogger(logOut, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return nil, err
	}
	logger = logger.With(slog.String(logkey.Instance, cfg.Instance))
	if start, steady := gcPercent(cfg.GCPercent, services, getenv); start > 0 {
		debug.SetGCPercent(start)
		logger.Info("garbage collector target set", slog.Int("gc_percent", start))
		if steady != start {
			time.AfterFunc(gatewayStartPeriod, func() {
				debug.SetGCPercent(steady)
				debug.FreeOSMemory() // the start's headroom goes back to the system now
				logger.Info("garbage collector target set", slog.Int("gc_percent", steady))
			})
		}
	}
	hasher, err := auth.UseHasher(cfg.PasswordHasher)
	if err != nil {
		return nil, err
	}
	logger.Info("password hashing", slog.String("hasher", hasher))
	tp, err := observability.NewTracerProvider(ctx, "helmdesk", cfg.Instance, getenv)
	if err != nil {
		return nil, err
	}
	p := &Platform{cfg: cfg, services: services, tp: tp, rt: &app.Runtime{
		Instance: cfg.Instance, Logger: logger, Tracer: tp, Metrics: observability.NewMetrics(), Health: app.NewHealth(),
	}}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.secrets, err = loadSecrets(cfg); err != nil {
		return nil, err
	}
	if cfg.TLSCert != "" {
		if p.tls, err = tlsconfig.Server(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, fmt.Errorf("https: %w", err)
		}
	}
	if err := p.connect(ctx); err != nil {
		return nil, err
	}
	if err := p.build(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Platform) has(name string) bool { return slices.Contains(p.services, name) }

func (p *Platform) connect(ctx context.Context) error {
	var err error
	p.mongo, _, err = store.Connect(ctx, store.Config{URI: p.cfg.MongoURI, Database: p.cfg.MongoDatabase, Logger: p.rt.Logger, SlowCommand: p.cfg.MongoSlowCommand}, p.rt.Metrics, p.tp)
	if err != nil {
		return err
	}
	p.rt.Health.AddCheck("mongodb", func(ctx context.Context) error { return p.mongo.Ping(ctx, nil) })
	p.redis, err = cache.Connect(ctx, cache.Config{Addr: p.cfg.RedisAddr, Password: p.cfg.RedisPassword})
	if err != nil {
		return err
	}
	p.rt.Health.AddCheck("redis", func(ctx context.Context) error { return p.redis.Ping(ctx).Err() })
	partitions := InboundPartitions(p.cfg.InboundPartitions, false)
	err = events.EnsureTopics(ctx, p.cfg.KafkaBrokers,
		events.TopicSpec{Name: events.TopicInbound, Partitions: partitions, ReplicationFactor: p.cfg.ReplicationFactor},
		events.TopicSpec{Name: events.TopicRouting, Partitions: partitions, ReplicationFactor: p.cfg.ReplicationFactor},
		events.TopicSpec{Name: events.TopicEvents, Partitions: partitions, ReplicationFactor: p.cfg.ReplicationFactor},
	)
	if err != nil {
		return err
	}
	p.producer = events.NewProducer(p.cfg.KafkaBrokers, p.rt.Metrics, p.tp)
	return nil
}

func (p *Platform) build(ctx context.Context) error {
	db := p.mongo.Database(p.cfg.MongoDatabase)
	var err error
	if p.has("routing") || p.has("session") {
		p.grpcLn, err = app.Listen(p.cfg.GRPCAddr)
		if err != nil {
			return err
		}
		var creds credentials.TransportCredentials
		if p.cfg.GRPCTLSCert != "" {
			if creds, err = tlsconfig.ServerCredentials(p.cfg.GRPCTLSCert, p.cfg.GRPCTLSKey, p.cfg.GRPCTLSClientCA); err != nil {
				return fmt.Errorf("grpc tls: %w", err)
			}
		}
		p.grpcServer = rpc.NewServer(p.rt, creds)
	}
	// Clients reach in-process services over the local gRPC listener: the same path as
	// across pods, so one process behaves exactly like many.
	dial := func(remote string) (*grpc.ClientConn, error) {
		target := remote
		if target == "" {
			if p.grpcLn == nil {
				return nil, errors.New("no address configured for a service that does not run in this process")
			}
			target = p.grpcLn.Addr().String()
		}
		var creds credentials.TransportCredentials
		if p.cfg.GRPCTLSCA != "" {
			var err error
			// The client presents this process's certificate when it has one (mTLS).
			if creds, err = tlsconfig.ClientCredentials(p.cfg.GRPCTLSCA, p.cfg.GRPCTLSCert, p.cfg.GRPCTLSKey, ""); err != nil {
				return nil, fmt.Errorf("grpc tls: %w", err)
			}
		}
		conn, err := rpc.Dial(p.rt, target, creds)
		if err == nil {
			p.conns = append(p.conns, conn)
		}
		return conn, err
	}
	routingAddr, sessionAddr := p.cfg.RoutingAddr, p.cfg.SessionAddr
	if p.has("routing") {
		routingAddr = ""
	}
	if p.has("session") {
		sessionAddr = ""
	}

	if p.has("routing") {
		svc, err := routing.New(ctx, p.cfg.Routing, routing.Deps{Runtime: p.rt.For("routing"), Mongo: db, Redis: p.redis, Producer: p.producer})
		if err != nil {
			return fmt.Errorf("start routing service: %w", err)
		}
		svc.Register(p.grpcServer)
		p.runners = append(p.runners, svc)
	}
	if p.has("session") {
		rconn, err := dial(routingAddr)
		if err != nil {
			return fmt.Errorf("connect to routing service: %w", err)
		}
		svc, err := session.New(ctx, p.cfg.Session, session.Deps{
			Runtime: p.rt.For("session"), Mongo: db, Redis: p.redis, Producer: p.producer,
			Routing: routingv1.NewRoutingServiceClient(rconn), Brokers: p.cfg.KafkaBrokers, Keyring: p.secrets.Keyring,
		})
		if err != nil {
			return fmt.Errorf("start session service: %w", err)
		}
		svc.Register(p.grpcServer)
		p.runners = append(p.runners, svc)
	}
	if p.has("gateway") {
		sconn, err := dial(sessionAddr)
		if err != nil {
			return fmt.Errorf("connect to session service: %w", err)
		}
		rconn, err := dial(routingAddr)
		if err != nil {
			return fmt.Errorf("connect to routing service: %w", err)
		}
		auditLog, err := audit.New(ctx, db, audit.Config{Keys: p.secrets.AuditKeys, Retention: p.cfg.AuditRetention, Logger: p.rt.Logger})
		if err != nil {
			return fmt.Errorf("open audit log: %w", err)
		}
		gw, err := gateway.New(ctx, p.cfg.Gateway, gateway.Deps{
			Runtime: p.rt.For("gateway"), Mongo: db, Redis: p.redis, Producer: p.producer,
			Sessions: sessionv1.NewSessionServiceClient(sconn), Routing: routingv1.NewRoutingServiceClient(rconn), Audit: auditLog,
		})
		if err != nil {
			return fmt.Errorf("start gateway: %w", err)
		}
		p.gateway = gw
		p.handler = gw.Handler()
		p.runners = append(p.runners, gw)
		if p.httpLn, err = app.Listen(p.cfg.HTTPAddr); err != nil {
			return err
		}
	} else if p.cfg.OpsAddr != "" {
		mux := http.NewServeMux()
		p.rt.Mount(mux)
		p.handler = mux
		if p.httpLn, err = app.Listen(p.cfg.OpsAddr); err != nil {
			return err
		}
	}
	return nil
}

// Scheme is "https" when the HTTP server serves TLS, "http" otherwise.
func (p *Platform) Scheme() string {
	if p.tls != nil {
		return "https"
	}
	return "http"
}

// HTTPAddr is the address the HTTP server listens on ("" when it has none).
func (p *Platform) HTTPAddr() string {
	if p.httpLn == nil {
		return ""
	}
	return p.httpLn.Addr().String()
}

// Runtime exposes the process runtime (for tests and tools).
func (p *Platform) Runtime() *app.Runtime { return p.rt }

// Run serves until ctx is done, then shuts down and releases every connection.
func (p *Platform) Run(ctx context.Context) error {
	defer p.close()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	// On shutdown: fail readiness first, close sockets with a resume hint, then stop.
	stop := context.AfterFunc(ctx, func() {
		p.rt.Health.SetDraining()
		if p.gateway != nil {
			p.gateway.CloseSockets()
		}
		cancel()
	})
	defer stop()
	runners := slices.Clone(p.runners)
	if p.grpcServer != nil {
		runners = append(runners, app.RunnerFunc(func(ctx context.Context) error { return rpc.Serve(ctx, p.grpcServer, p.grpcLn, p.rt.Logger) }))
	}
	if p.httpLn != nil {
		srv := &app.HTTPServer{Name: "http", Listener: p.httpLn, Handler: p.handler, Logger: p.rt.Logger, ShutdownTimeout: p.cfg.ShutdownTimeout, TLSConfig: p.tls}
		runners = append(runners, srv)
	}
	if p.cfg.PprofAddr != "" {
		host, _, err := net.SplitHostPort(p.cfg.PprofAddr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return fmt.Errorf("--pprof-addr %q: profiles are served on loopback addresses only", p.cfg.PprofAddr)
		}
		ln, err := app.Listen(p.cfg.PprofAddr)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		runners = append(runners, &app.HTTPServer{Name: "pprof", Listener: ln, Handler: mux, Logger: p.rt.Logger})
	}
	p.rt.Logger.Info("helmdesk started", slog.Any("services", p.services), slog.String("http_addr", p.HTTPAddr()))
	err := app.RunAll(runCtx, runners...)
	p.rt.Logger.Info("helmdesk stopped")
	return err
}

func (p *Platform) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range p.conns {
		_ = c.Close()
	}
	// Listeners are closed by their servers; these calls only matter when Run never ran.
	if p.grpcLn != nil {
		_ = p.grpcLn.Close()
	}
	if p.httpLn != nil {
		_ = p.httpLn.Close()
	}
	if p.producer != nil {
		_ = p.producer.Close()
	}
	if p.redis != nil {
		_ = p.redis.Close()
	}
	if p.mongo != nil {
		_ = p.mongo.Disconnect(ctx)
	}
	if p.tp != nil {
		_ = p.tp.Shutdown(ctx)
	}
}
