package devstack

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// kfake keeps every record in memory as well as in its segments, and enforces
// retention only on topics that set retention.ms or retention.bytes themselves; the
// broker-wide setting is only read when something asks for retention to be applied.
// A dev stack that runs for weeks, or keeps its data folder from run to run, would
// grow without end (11 MB a minute at 2,000 messages/s) and take longer to start each
// time. The dev stack therefore applies a retention of its own every
// kafkaRetentionInterval: records older than kafkaRetention go, from memory and from
// disk. Its consumers run in the same process and keep up within seconds, so a day
// is ample; Kafka's own default is a week on disk.
const (
	kafkaRetention         = 24 * time.Hour
	kafkaRetentionInterval = time.Minute
)

// Kafka is an in-process kfake cluster with a single broker on a loopback
// port. Its log, offsets and group state are persisted in a directory.
type Kafka struct {
	cluster *kfake.Cluster
	brokers []string
	log     *kfakeLogger

	stopRetention chan struct{}
	retentionDone chan struct{}

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
//
// Records older than a day are dropped once a minute (see kafkaRetention).
func StartKafka(dir string, logger *slog.Logger) (*Kafka, error) {
	return startKafka(dir, logger, kafkaRetention, kafkaRetentionInterval)
}

func startKafka(dir string, logger *slog.Logger, retention, every time.Duration) (*Kafka, error) {
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
		kfake.BrokerConfigs(map[string]string{"log.retention.ms": strconv.FormatInt(retention.Milliseconds(), 10)}),
	)
	if err != nil {
		return nil, fmt.Errorf("start kfake in %s: %w", abs, err)
	}

	k := &Kafka{
		cluster:       cluster,
		brokers:       cluster.ListenAddrs(),
		log:           kl,
		stopRetention: make(chan struct{}),
		retentionDone: make(chan struct{}),
	}
	go k.applyRetention(every)
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
		close(k.stopRetention)
		<-k.retentionDone
		k.log.startCollecting()
		k.cluster.Close()
		if errs := k.log.collected(); len(errs) > 0 {
			k.closeErr = fmt.Errorf("close kfake: %w", errors.Join(errs...))
		}
	})
	return k.closeErr
}

// applyRetention drops expired records every interval until Close.
func (k *Kafka) applyRetention(every time.Duration) {
	defer close(k.retentionDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-k.stopRetention:
			return
		case <-t.C:
			k.cluster.ApplyRetention()
		}
	}
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
