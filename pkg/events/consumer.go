package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/helmdesk/helmdesk/pkg/logkey"
	"github.com/helmdesk/helmdesk/pkg/observability"
)

// handleTimeout bounds one HandleBatch call.
const handleTimeout = 30 * time.Second

// commitEvery paces offset commits of a busy partition.
const commitEvery = 200 * time.Millisecond

// Batch is a run of consecutive records from one partition.
type Batch struct {
	Topic     string
	Partition int
	Messages  []kafka.Message
}

// Handler processes batches. A nil error commits the batch; an error retries the same
// batch after a backoff (it is never skipped), so a handler that wants to drop a
// poison record must log it and return nil.
type Handler interface {
	HandleBatch(ctx context.Context, b Batch) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, b Batch) error

// HandleBatch calls f.
func (f HandlerFunc) HandleBatch(ctx context.Context, b Batch) error { return f(ctx, b) }

// Assignments is told which partitions this member owns whenever the group rebalances,
// before any batch of the new generation is handled. Partition owners that cache
// per-key state must drop it here: another member may have written in between.
type Assignments interface {
	Assigned(topic string, partitions []int)
}

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Brokers []string
	GroupID string
	Topics  []string
	// MaxBatch bounds the records handed to one HandleBatch call (default 500).
	MaxBatch int
	// Linger is how long to wait for more records after the first of a batch (default 1 ms).
	Linger time.Duration
}

// Consumer is a consumer-group member that commits only what its handler processed.
type Consumer struct {
	cfg     ConsumerConfig
	handler Handler
	logger  *slog.Logger
	metrics *observability.Metrics
	tracer  trace.Tracer
}

// NewConsumer returns a consumer; Run joins the group.
func NewConsumer(cfg ConsumerConfig, h Handler, logger *slog.Logger, m *observability.Metrics, tp trace.TracerProvider) *Consumer {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 500
	}
	if cfg.Linger <= 0 {
		cfg.Linger = time.Millisecond
	}
	return &Consumer{cfg: cfg, handler: h, logger: logger.With(slog.String(logkey.Group, cfg.GroupID)), metrics: m, tracer: tp.Tracer("github.com/helmdesk/helmdesk/pkg/events")}
}

// Run consumes until ctx is done, then leaves the group.
func (c *Consumer) Run(ctx context.Context) error {
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:          c.cfg.GroupID,
		Brokers:     c.cfg.Brokers,
		Topics:      c.cfg.Topics,
		StartOffset: kafka.FirstOffset,
		// A member that dies holds its partitions until its session times out: the
		// shortest brokers accept (6 s) bounds how long a crash stalls them.
		HeartbeatInterval: 500 * time.Millisecond,
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  500 * time.Millisecond,
		Timeout:           5 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("join consumer group %s: %w", c.cfg.GroupID, err)
	}
	defer group.Close()
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, kafka.ErrGroupClosed) {
				return nil
			}
			c.logger.WarnContext(ctx, "consumer group generation failed", slog.Any(logkey.Error, err))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		c.logger.InfoContext(ctx, "consumer group assigned partitions", slog.Int("generation", int(gen.ID)), slog.Any("assignments", describe(gen.Assignments)))
		for topic, parts := range gen.Assignments {
			if a, ok := c.handler.(Assignments); ok {
				ids := make([]int, len(parts))
				for i, p := range parts {
					ids[i] = p.ID
				}
				a.Assigned(topic, ids)
			}
			for _, p := range parts {
				gen.Start(func(gctx context.Context) { c.consumePartition(gctx, gen, topic, p.ID, p.Offset) })
			}
		}
	}
}

func describe(a map[string][]kafka.PartitionAssignment) map[string][]int {
	out := make(map[string][]int, len(a))
	for t, ps := range a {
		for _, p := range ps {
			out[t] = append(out[t], p.ID)
		}
	}
	return out
}

func (c *Consumer) consumePartition(ctx context.Context, gen *kafka.Generation, topic string, partition int, offset int64) {
	logger := c.logger.With(slog.String(logkey.Topic, topic), slog.Int(logkey.Partition, partition))
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   c.cfg.Brokers,
		Topic:     topic,
		Partition: partition,
		MinBytes:  1,
		MaxBytes:  10 << 20,
		MaxWait:   250 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		logger.ErrorContext(ctx, "set partition offset", slog.Any(logkey.Error, err))
		return
	}
	lag := c.metrics.KafkaConsumerLag.WithLabelValues(c.cfg.GroupID, topic, strconv.Itoa(partition))
	consumed := c.metrics.KafkaConsumed.WithLabelValues(c.cfg.GroupID, topic)
	handleTime := c.metrics.KafkaHandleDuration.WithLabelValues(c.cfg.GroupID, topic)
	delay := c.metrics.KafkaConsumeDelay.WithLabelValues(c.cfg.GroupID, topic)
	commitTime := c.metrics.KafkaCommitDuration.WithLabelValues(c.cfg.GroupID, topic)
	// Offsets are committed at most every commitEvery (and when the partition is
	// given up), not after every batch: a commit is a broker round trip, and under
	// load batches are small. Only handled records are ever committed; a crash
	// replays at most commitEvery of them, which handlers absorb (they are idempotent).
	var pending int64 = -1
	var lastCommit time.Time
	commit := func() {
		if pending < 0 {
			return
		}
		started := time.Now()
		defer func() { commitTime.Observe(time.Since(started).Seconds()) }()
		if err := gen.CommitOffsets(map[string]map[int]int64{topic: {partition: pending}}); err != nil {
			// They will be handed out again after a rebalance and deduplicated.
			logger.WarnContext(ctx, "commit offsets", slog.Any(logkey.Error, err))
			return
		}
		pending, lastCommit = -1, time.Now()
	}
	defer commit()
	for {
		fctx, cancel := context.WithTimeout(ctx, commitEvery)
		msgs, err := c.fetchBatch(fctx, r)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, context.DeadlineExceeded) {
				commit() // idle: settle what was handled
				continue
			}
			logger.WarnContext(ctx, "fetch from partition", slog.Any(logkey.Error, err))
			return
		}
		start := time.Now()
		if !msgs[0].Time.IsZero() {
			delay.Observe(max(start.Sub(msgs[0].Time), 0).Seconds())
		}
		batch := Batch{Topic: topic, Partition: partition, Messages: msgs}
		for attempt := 0; ; attempt++ {
			// A batch that started is finished even when shutdown begins, so that its
			// offsets get committed rather than replayed by the next owner.
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ContextFrom(ctx, msgs[0])), handleTimeout)
			bctx, span := c.tracer.Start(hctx, "kafka consume "+topic, trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(attribute.String("messaging.consumer.group.name", c.cfg.GroupID), attribute.Int("messaging.destination.partition.id", partition), attribute.Int("messaging.batch.message_count", len(msgs))))
			err = c.handler.HandleBatch(bctx, batch)
			span.End()
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			backoff := min(time.Duration(1<<min(attempt, 6))*50*time.Millisecond, 3*time.Second)
			logger.ErrorContext(bctx, "handle batch, will retry", slog.Any(logkey.Error, err), slog.Int64(logkey.Offset, msgs[0].Offset), slog.Duration("backoff", backoff))
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		last := msgs[len(msgs)-1]
		pending = last.Offset + 1
		if time.Since(lastCommit) >= commitEvery {
			commit()
		}
		handleTime.Observe(time.Since(start).Seconds())
		consumed.Add(float64(len(msgs)))
		lag.Set(float64(max(last.HighWaterMark-last.Offset-1, 0)))
	}
}

// fetchBatch blocks for the first record, then takes every record the reader has
// already fetched, and waits up to Linger for more only while the broker is known to
// hold more. The reader fetches ahead: while the handler is busy, each record that
// arrives may come in a fetch of its own (whose high watermark then says nothing more
// is waiting), so the reader's queue, not the watermark, tells what is ready.
func (c *Consumer) fetchBatch(ctx context.Context, r *kafka.Reader) ([]kafka.Message, error) {
	first, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	msgs := []kafka.Message{first}
	var lctx context.Context
	for len(msgs) < c.cfg.MaxBatch {
		last := msgs[len(msgs)-1]
		if r.Stats().QueueLength == 0 && last.HighWaterMark-last.Offset <= 1 {
			break // nothing more is known to be waiting
		}
		if lctx == nil {
			var cancel context.CancelFunc
			lctx, cancel = context.WithTimeout(ctx, c.cfg.Linger)
			defer cancel()
		}
		m, err := r.FetchMessage(lctx)
		if err != nil {
			break
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}
