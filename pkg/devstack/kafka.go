package devstack

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka is an in-process kfake cluster with a single broker on a loopback
// port. Its log, offsets and group state are persisted in a directory.
type Kafka struct {
	cluster *kfake.Cluster
	brokers []string
	log     *kfakeLogger

	closeOnce sync.Once
	closeErr  error
}

// StartKafka starts a one-broker kfake cluster on a free port of 127.0.0.1,
// persisting its data in dir (created if needed) and reloading whatever an
// earlier run left there.
//
// Topics are created automatically on first use, with one partition like a
// default Kafka broker; create them explicitly (CreateTopics) to get more.
// kfake's own logs go to logger at error level only.
func StartKafka(dir string, logger *slog.Logger) (*Kafka, error) {
	logger = orDiscard(logger).With(slog.String("component", "kfake"))

	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve kafka data dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("create kafka data dir: %w", err)
	}

	kl := &kfakeLogger{logger: logger}
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(1),
		kfake.DataDir(abs),
		kfake.WithLogger(kl),
	)
	if err != nil {
		return nil, fmt.Errorf("start kfake in %s: %w", abs, err)
	}

	k := &Kafka{
		cluster: cluster,
		brokers: cluster.ListenAddrs(),
		log:     kl,
	}
	logger.Debug("kafka started", slog.Any("brokers", k.brokers), slog.String("dir", abs))
	return k, nil
}

// Brokers returns the bootstrap addresses ("127.0.0.1:PORT").
func (k *Kafka) Brokers() []string {
	return append([]string(nil), k.brokers...)
}

// Close stops the cluster after writing its state to disk. kfake only logs
// persistence failures, so Close reports the errors it logged while shutting
// down. It is safe to call more than once.
func (k *Kafka) Close() error {
	k.closeOnce.Do(func() {
		k.log.startCollecting()
		k.cluster.Close()
		if errs := k.log.collected(); len(errs) > 0 {
			k.closeErr = fmt.Errorf("close kfake: %w", errors.Join(errs...))
		}
	})
	return k.closeErr
}

// kfakeLogger forwards kfake's error logs to slog. kfake logs request
// failures at warn level, which are normal traffic for a broker (unknown
// topic while auto-creating, rebalances) and are dropped.
type kfakeLogger struct {
	logger *slog.Logger

	mu         sync.Mutex
	collecting bool
	errs       []error
}

func (l *kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	if level != kfake.LogLevelError {
		return
	}
	msg := fmt.Sprintf(format, args...)
	l.logger.Error("kfake error", slog.String("detail", msg))

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.collecting {
		l.errs = append(l.errs, errors.New(msg))
	}
}

func (l *kfakeLogger) startCollecting() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.collecting = true
}

func (l *kfakeLogger) collected() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errs
}
