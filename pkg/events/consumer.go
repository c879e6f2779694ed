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

// Pipeliner is a Handler whose batches can overlap: StartBatch does the part of a
// batch that must happen in order and returns while the rest (a write that takes a
// while) goes on, so that the partition's next batch can start. The consumer starts
// a partition's batches in order and commits each once done reports nil for it and
// for every batch before it.
//
// An error from StartBatch, or on done, stops the pipeline: the consumer waits for
// every batch started, then hands the failed batch and every one after it to
// HandleBatch again, one at a time, in order. Both must therefore be idempotent.
type Pipeliner interface {
	Handler
	StartBatch(ctx context.Context, b Batch) (done <-chan error, err error)
}

// A partition keeps at most pipelineBatches batches, and pipelineRecords records,
// started and not yet done.
const (
	pipelineBatches = 256
	pipelineRecords = 10_000
)

// ownerKey carries the context of the consumer-group generation a batch was handed
// out in.
type ownerKey struct{}

// StillOwner reports whether the batch that ctx belongs to was handed out in a
// consumer-group generation that is still current: this member still owns the
// batch's partition, so nobody else writes its keys. It is false once the group
// rebalances, once a heartbeat fails (the member may already have been replaced), on
// shutdown, and outside a Consumer. The batch itself still finishes either way.
func StillOwner(ctx context.Context) bool {
	gen, ok := ctx.Value(ownerKey{}).(context.Context)
	return ok && gen.Err() == nil
}

// WithGeneration returns ctx carrying gen, the context of the consumer-group
// generation a batch was handed out in, as Consumer passes it to handlers (and as
// handlers' tests can).
func WithGeneration(ctx, gen context.Context) context.Context {
	return context.WithValue(ctx, ownerKey{}, gen)
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
	// finished settles a batch that is done: its offsets may be committed.
	finished := func(b Batch, start time.Time) {
		last := b.Messages[len(b.Messages)-1]
		pending = last.Offset + 1
		if time.Since(lastCommit) >= commitEvery {
			commit()
		}
		handleTime.Observe(time.Since(start).Seconds())
		consumed.Add(float64(len(b.Messages)))
		lag.Set(float64(max(last.HighWaterMark-last.Offset-1, 0)))
	}
	// begin starts a batch's span and context. A batch that started is finished even
	// when shutdown begins, so that its offsets get committed rather than replayed by
	// the next owner.
	begin := func(b Batch) (context.Context, func()) {
		hctx, cancel := context.WithTimeout(WithGeneration(context.WithoutCancel(ContextFrom(ctx, b.Messages[0])), ctx), handleTimeout)
		bctx, span := c.tracer.Start(hctx, "kafka consume "+topic, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.consumer.group.name", c.cfg.GroupID), attribute.Int("messaging.destination.partition.id", partition), attribute.Int("messaging.batch.message_count", len(b.Messages))))
		return bctx, func() { span.End(); cancel() }
	}
	// handle runs a batch to completion, retrying it after a backoff until it
	// succeeds; false means the consumer is stopping and the batch was not handled.
	handle := func(b Batch) bool {
		for attempt := 0; ; attempt++ {
			bctx, end := begin(b)
			err := c.handler.HandleBatch(bctx, b)
			end()
			if err == nil {
				return true
			}
			if ctx.Err() != nil {
				return false
			}
			backoff := min(time.Duration(1<<min(attempt, 6))*50*time.Millisecond, 3*time.Second)
			logger.ErrorContext(bctx, "handle batch, will retry", slog.Any(logkey.Error, err), slog.Int64(logkey.Offset, b.Messages[0].Offset), slog.Duration("backoff", backoff))
			select {
			case <-ctx.Done():
				return false
			case <-time.After(backoff):
			}
		}
	}

	// Batches a Pipeliner started and that are not yet settled, oldest first.
	type startedBatch struct {
		batch Batch
		start time.Time
		done  <-chan error
		end   func()
	}
	var started []startedBatch
	records := 0
	// settle settles started batches in order: those done, waiting for at least the
	// first must of them (all: len(started)). When one failed, it waits for the rest
	// and handles the failed one and all after it again, in order. False means the
	// consumer is stopping.
	settle := func(must int) bool {
		for n := 0; len(started) > 0; n++ {
			head := started[0]
			var err error
			if n < must {
				err = <-head.done
			} else {
				select {
				case err = <-head.done:
				default:
					return true
				}
			}
			head.end()
			if err != nil {
				logger.WarnContext(ctx, "pipelined batch failed, handling it and the batches after it again", slog.Any(logkey.Error, err), slog.Int64(logkey.Offset, head.batch.Messages[0].Offset), slog.Int(logkey.Count, len(started)))
				again := started
				started, records = nil, 0
				for _, b := range again[1:] {
					<-b.done
					b.end()
				}
				for _, b := range again {
					if !handle(b.batch) {
						return false
					}
					finished(b.batch, b.start)
				}
				return true
			}
			started[0] = startedBatch{}
			started = started[1:]
			records -= len(head.batch.Messages)
			finished(head.batch, head.start)
		}
		return true
	}
	defer func() { settle(len(started)) }()
	pipeliner, pipelined := c.handler.(Pipeliner)
	for {
		if !settle(0) {
			return
		}
		fctx, cancel := context.WithTimeout(ctx, commitEvery)
		msgs, err := c.fetchBatch(fctx, r)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, context.DeadlineExceeded) {
				// Idle: settle what was handled.
				if !settle(len(started)) {
					return
				}
				commit()
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
		if !pipelined {
			if !handle(batch) {
				return
			}
			finished(batch, start)
			continue
		}
		for len(started) > 0 && (len(started) >= pipelineBatches || records+len(msgs) > pipelineRecords) {
			if !settle(1) { // full: wait for the oldest
				return
			}
		}
		bctx, end := begin(batch)
		done, err := pipeliner.StartBatch(bctx, batch)
		if err != nil {
			end()
			// The batches before it first, then this one, in order.
			if !settle(len(started)) || !handle(batch) {
				return
			}
			finished(batch, start)
			continue
		}
		started = append(started, startedBatch{batch: batch, start: start, done: done, end: end})
		records += len(msgs)
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
