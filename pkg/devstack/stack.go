package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/helmdesk/helmdesk/pkg/redisproc"
)

// Options configures [Start].
type Options struct {
	// DataDir holds the data of every dependency; it is created if needed.
	// Required.
	DataDir string
	// Logger receives the stack's logs; nil discards them.
	Logger *slog.Logger
	// Redis chooses the Redis: RedisAuto (the default when empty), RedisServer or
	// RedisEmbedded.
	Redis string
}

// Stack is a running set of embedded dependencies. The address fields are
// what the services' configuration needs.
type Stack struct {
	// MongoURI is a mongodb:// URI for FerretDB.
	MongoURI string
	// KafkaBrokers are the kfake bootstrap addresses.
	KafkaBrokers []string
	// RedisAddr is the Redis host:port.
	RedisAddr string
	// RedisKind is "redis-server" or "miniredis".
	RedisKind string

	logger *slog.Logger
	lock   *dirLock
	// closers in start order; Close runs them in reverse.
	closers []namedCloser

	closeOnce sync.Once
	closeErr  error
}

type namedCloser struct {
	name  string
	close func() error
}

// Start locks opts.DataDir, then starts MongoDB (FerretDB), Kafka (kfake)
// and Redis (miniredis) with their data under it. If another stack holds the
// directory it returns a [*DataDirInUseError]. If a dependency fails to
// start, the ones already started are closed before returning.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	if opts.DataDir == "" {
		return nil, errors.New("start dev stack: data dir is required")
	}
	logger := orDiscard(opts.Logger)

	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("resolve data dir %s: %w", opts.DataDir, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}

	s := &Stack{logger: logger, lock: lock}
	if err := s.start(ctx, dir, opts.Redis); err != nil {
		if cerr := s.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	logger.Info("dev stack started",
		slog.String("data_dir", dir),
		slog.String("mongo_uri", s.MongoURI),
		slog.Any("kafka_brokers", s.KafkaBrokers),
		slog.String("redis_addr", s.RedisAddr),
		slog.String("redis", s.RedisKind))
	return s, nil
}

func (s *Stack) start(ctx context.Context, dir, redisMode string) error {
	mongo, err := StartMongo(ctx, filepath.Join(dir, "mongo"), s.logger)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, namedCloser{"mongo", mongo.Close})
	s.MongoURI = mongo.URI()

	kafka, err := StartKafka(filepath.Join(dir, "kafka"), s.logger)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, namedCloser{"kafka", kafka.Close})
	s.KafkaBrokers = kafka.Brokers()

	switch redisMode {
	case "", RedisAuto, RedisServer:
		rs, err := StartRedisServer(filepath.Join(dir, "redis"), s.logger)
		if err == nil {
			s.closers = append(s.closers, namedCloser{"redis", rs.Close})
			s.RedisAddr, s.RedisKind = rs.Addr(), "redis-server"
			return nil
		}
		if redisMode == RedisServer || !errors.Is(err, redisproc.ErrNotInstalled) {
			return err
		}
		s.logger.Info("redis-server is not installed; using the embedded miniredis, which suits a few hundred live conversations")
	case RedisEmbedded:
	default:
		return fmt.Errorf("unknown redis mode %q: want %s, %s or %s", redisMode, RedisAuto, RedisServer, RedisEmbedded)
	}
	redis, err := StartRedis(filepath.Join(dir, "redis.json"), s.logger)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, namedCloser{"redis", redis.Close})
	s.RedisAddr, s.RedisKind = redis.Addr(), "miniredis"
	return nil
}

// Close stops the dependencies in reverse start order, then releases the
// data directory. It returns every error met; it is safe to call more than
// once.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for i := len(s.closers) - 1; i >= 0; i-- {
			c := s.closers[i]
			if err := c.close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", c.name, err))
			}
		}
		if err := s.lock.release(); err != nil {
			errs = append(errs, err)
		}
		s.closeErr = errors.Join(errs...)
		if s.closeErr == nil {
			s.logger.Info("dev stack stopped")
		}
	})
	return s.closeErr
}
