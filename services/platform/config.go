package platform

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/helmdesk/helmdesk/pkg/auth"
	"github.com/helmdesk/helmdesk/pkg/config"
	"github.com/helmdesk/helmdesk/services/gateway"
	"github.com/helmdesk/helmdesk/services/routing"
	"github.com/helmdesk/helmdesk/services/session"
)

// Services lists every service a process can run, in start order.
var Services = []string{"routing", "session", "gateway"}

// Config is the configuration of one process.
type Config struct {
	HTTPAddr          string
	GRPCAddr          string
	OpsAddr           string
	SessionAddr       string
	RoutingAddr       string
	MongoURI          string
	MongoDatabase     string
	MongoSlowCommand  time.Duration
	KafkaBrokers      []string
	InboundPartitions int
	ReplicationFactor int
	RedisAddr         string
	RedisPassword     string
	LogLevel          string
	LogFormat         string
	Instance          string
	ShutdownTimeout   time.Duration
	PprofAddr         string
	GCPercent         int

	EncryptionKeys     string
	EncryptionKeysFile string
	AuditKeys          string
	AuditKeysFile      string
	AuditRetention     time.Duration
	TLSCert            string
	TLSKey             string
	GRPCTLSCert        string
	GRPCTLSKey         string
	GRPCTLSClientCA    string
	GRPCTLSCA          string
	PasswordHasher     string

	Gateway gateway.Config
	Session session.Config
	Routing routing.Config
}

// Declare registers every setting of a process on s.
func (c *Config) Declare(s *config.Set) {
	s.Group("Process")
	s.String(&c.HTTPAddr, "http-addr", "HELMDESK_HTTP_ADDR", ":8080", "Address of the gateway's HTTP server (API, sockets, console, /metrics, /healthz, /readyz).")
	s.String(&c.GRPCAddr, "grpc-addr", "HELMDESK_GRPC_ADDR", ":9000", "Address of the gRPC server of the session and routing services.")
	s.String(&c.OpsAddr, "ops-addr", "HELMDESK_OPS_ADDR", ":9090", "Address serving /metrics, /healthz and /readyz in processes without the gateway; empty disables it.")
	s.String(&c.SessionAddr, "session-addr", "HELMDESK_SESSION_ADDR", "", "gRPC target of the session service when it runs in another process (for example dns:///helmdesk-session:9000); empty means this process.")
	s.String(&c.RoutingAddr, "routing-addr", "HELMDESK_ROUTING_ADDR", "", "gRPC target of the routing service when it runs in another process; empty means this process.")
	s.String(&c.LogLevel, "log-level", "HELMDESK_LOG_LEVEL", "info", "Log level: debug, info, warn or error.")
	s.String(&c.LogFormat, "log-format", "HELMDESK_LOG_FORMAT", "json", "Log format: json or text.")
	s.String(&c.Instance, "instance", "HELMDESK_INSTANCE", "", "Name of this process in logs, traces and metrics (the pod name in Kubernetes); empty means the host name.")
	s.String(&c.PprofAddr, "pprof-addr", "HELMDESK_PPROF_ADDR", "", "Address serving Go's /debug/pprof profiles (loopback only, e.g. 127.0.0.1:6060); empty disables it.")
	s.Int(&c.GCPercent, "gc-percent", "HELMDESK_GC_PERCENT", 0, "Garbage-collector target, as GOGC: how far the heap grows over live memory before a collection, in percent. 0 chooses: GOGC when it is set, else, in a process that serves only the gateway, 100 for its first minute (while its clients reconnect) and 50 after it (its memory is mostly long-lived sockets, so collecting more often buys much memory for little CPU), else Go's default of 100.")
	s.Duration(&c.ShutdownTimeout, "shutdown-timeout", "HELMDESK_SHUTDOWN_TIMEOUT", 20*time.Second, "How long a stopping process waits for in-flight work.")
	s.Group("Dependencies")
	s.String(&c.MongoURI, "mongo-uri", "HELMDESK_MONGO_URI", "mongodb://localhost:27017", "MongoDB connection string.")
	s.String(&c.MongoDatabase, "mongo-database", "HELMDESK_MONGO_DATABASE", "helmdesk", "MongoDB database name.")
	s.Duration(&c.MongoSlowCommand, "mongo-slow-command", "HELMDESK_MONGO_SLOW_COMMAND", 500*time.Millisecond, "Log MongoDB commands slower than this (collection and filter keys, never values); 0 disables.")
	s.List(&c.KafkaBrokers, "kafka-brokers", "HELMDESK_KAFKA_BROKERS", []string{"localhost:9092"}, "Kafka bootstrap brokers, comma-separated.")
	s.Int(&c.InboundPartitions, "kafka-inbound-partitions", "HELMDESK_KAFKA_INBOUND_PARTITIONS", 0, "Partitions of the inbound, routing and events topics when Helmdesk creates them (the most session consumers that can share the load). 0 chooses: 12, or 4 in helmdesk dev, whose one process consumes every partition.")
	s.Int(&c.ReplicationFactor, "kafka-replication-factor", "HELMDESK_KAFKA_REPLICATION_FACTOR", 1, "Replication factor of topics Helmdesk creates (3 in production).")
	s.String(&c.RedisAddr, "redis-addr", "HELMDESK_REDIS_ADDR", "localhost:6379", "Redis address (host:port).")
	s.String(&c.RedisPassword, "redis-password", "HELMDESK_REDIS_PASSWORD", "", "Redis password, if any.")
	s.Group("Security")
	s.String(&c.EncryptionKeys, "encryption-keys", "HELMDESK_ENCRYPTION_KEYS", "", "Field-encryption and blind-index keys, e.g. `k2:<base64>,k1:<base64>,index:i1:<base64>` (the first encryption key encrypts; all decrypt). Generate with `helmdesk keys generate`.")
	s.String(&c.EncryptionKeysFile, "encryption-keys-file", "HELMDESK_ENCRYPTION_KEYS_FILE", "", "File holding the encryption keys (same format, or JSON), e.g. a mounted Kubernetes secret.")
	s.String(&c.AuditKeys, "audit-keys", "HELMDESK_AUDIT_KEYS", "", "Keys of the audit log's HMAC chain, `id:<base64>` comma-separated; the first signs new entries.")
	s.String(&c.AuditKeysFile, "audit-keys-file", "HELMDESK_AUDIT_KEYS_FILE", "", "File holding the audit chain keys.")
	s.Duration(&c.AuditRetention, "audit-retention", "HELMDESK_AUDIT_RETENTION", 180*24*time.Hour, "How long audit entries are kept before the purge job removes them (at least 180 days).")
	s.String(&c.TLSCert, "tls-cert", "HELMDESK_TLS_CERT", "", "PEM certificate (chain) for HTTPS on the gateway's address; with --tls-key. Reloaded when the file changes. TLS 1.2 minimum, 1.3 preferred.")
	s.String(&c.TLSKey, "tls-key", "HELMDESK_TLS_KEY", "", "PEM private key of --tls-cert.")
	s.String(&c.GRPCTLSCert, "grpc-tls-cert", "HELMDESK_GRPC_TLS_CERT", "", "PEM certificate of this process for gRPC between services (server side, and client side for mTLS).")
	s.String(&c.GRPCTLSKey, "grpc-tls-key", "HELMDESK_GRPC_TLS_KEY", "", "PEM private key of --grpc-tls-cert.")
	s.String(&c.GRPCTLSClientCA, "grpc-tls-client-ca", "HELMDESK_GRPC_TLS_CLIENT_CA", "", "CA that client certificates must chain to (enables mutual TLS on the gRPC server).")
	s.String(&c.GRPCTLSCA, "grpc-tls-ca", "HELMDESK_GRPC_TLS_CA", "", "CA that gRPC servers' certificates must chain to; setting it makes this process dial other services over TLS.")
	s.String(&c.PasswordHasher, "password-hasher", "HELMDESK_PASSWORD_HASHER", auth.HasherAuto, "Implementation of argon2id for password hashes: auto (libsodium when the system has it, else Go), go, or libsodium (refuse to start without it). Both compute the same hashes; libsodium's is 1.7 times as fast on processors with AVX2.")
	c.Gateway.Declare(s)
	c.Session.Declare(s)
	c.Routing.Declare(s)
	s.Check(func() error {
		var errs []error
		if c.InboundPartitions < 0 || c.InboundPartitions > 1024 {
			errs = append(errs, errors.New("--kafka-inbound-partitions must be between 0 (choose) and 1024"))
		}
		if c.ReplicationFactor < 1 {
			errs = append(errs, errors.New("--kafka-replication-factor must be at least 1"))
		}
		if len(c.KafkaBrokers) == 0 {
			errs = append(errs, errors.New("--kafka-brokers must name at least one broker"))
		}
		if c.Instance == "" {
			c.Instance, _ = os.Hostname()
		}
		if (c.TLSCert == "") != (c.TLSKey == "") {
			errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
		}
		if (c.GRPCTLSCert == "") != (c.GRPCTLSKey == "") {
			errs = append(errs, errors.New("--grpc-tls-cert and --grpc-tls-key go together"))
		}
		if c.AuditRetention < 180*24*time.Hour {
			errs = append(errs, errors.New("--audit-retention must be at least 180 days (4320h)"))
		}
		if c.GCPercent < 0 || (c.GCPercent > 0 && c.GCPercent < 10) || c.GCPercent > 1000 {
			errs = append(errs, errors.New("--gc-percent must be 0 (automatic) or between 10 and 1000"))
		}
		if err := auth.CheckHasher(c.PasswordHasher); err != nil {
			errs = append(errs, fmt.Errorf("--password-hasher: %w", err))
		}
		if c.MongoDatabase == "" {
			errs = append(errs, errors.New("--mongo-database must not be empty"))
		}
		return errors.Join(errs...)
	})
}

// A process serving only the gateway collects garbage at gatewayGCPercent: its heap is
// mostly long-lived sockets, so collecting more often buys much memory for little CPU.
// Except while it starts: a restarted gateway's clients all reconnect within seconds,
// and its heap grows from nothing to every socket's state. Collecting at 50% then
// marks memory that is nearly all live again and again, in the very seconds the
// reconnects wait for CPU, so for its first gatewayStartPeriod it collects at Go's
// default.
const (
	gatewayGCPercent      = 50
	gatewayStartGCPercent = 100
	gatewayStartPeriod    = time.Minute
)

// Partitions of the inbound, routing and events topics when --kafka-inbound-partitions
// is 0. Partitions bound how many session consumers share the inbound load, so a
// deployment gets DefaultInboundPartitions. helmdesk dev runs one process that consumes
// every partition, where more partitions only split the same messages into smaller
// batches, each costing a Kafka fetch, a Redis script and a Redis pipeline of its own;
// it gets DevInboundPartitions (docs/benchmarks.md). Topics keep the partitions they
// were created with.
const (
	DefaultInboundPartitions = 12
	DevInboundPartitions     = 4
)

// InboundPartitions is the partition count for the configured one (0 chooses), in a
// deployment or in helmdesk dev.
func InboundPartitions(configured int, dev bool) int {
	switch {
	case configured > 0:
		return configured
	case dev:
		return DevInboundPartitions
	default:
		return DefaultInboundPartitions
	}
}

// gcPercent is the collector target to set for a process running services, at start
// and after gatewayStartPeriod; 0 leaves Go's (GOGC, or 100).
func gcPercent(configured int, services []string, getenv func(string) string) (start, steady int) {
	switch {
	case configured > 0:
		return configured, configured
	case getenv("GOGC") != "":
		return 0, 0
	case slices.Equal(services, []string{"gateway"}):
		return gatewayStartGCPercent, gatewayGCPercent
	default:
		return 0, 0
	}
}

// Select validates a list of service names; empty means all.
func Select(names []string) ([]string, error) {
	if len(names) == 0 || (len(names) == 1 && names[0] == "all") {
		return slices.Clone(Services), nil
	}
	var out []string
	for _, n := range names {
		if !slices.Contains(Services, n) {
			return nil, fmt.Errorf("unknown service %q (services: %v, or all)", n, Services)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	// Keep start order.
	slices.SortFunc(out, func(a, b string) int { return slices.Index(Services, a) - slices.Index(Services, b) })
	return out, nil
}
