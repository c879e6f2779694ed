package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/helmdesk/helmdesk/pkg/groupcommit"
	"github.com/helmdesk/helmdesk/pkg/observability"
	eventsv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/events/v1"
)

// Record is one envelope bound for a topic.
type Record struct {
	Topic    string
	Envelope *eventsv1.Envelope
}

// Producer writes envelopes to Kafka and returns once every in-sync replica has them.
//
// Concurrent Publish calls are written together (group commit): one write is in
// flight at a time, and the calls that arrive meanwhile go out as the next one. The
// Kafka writer closes a partition's batch after its batch timeout whether or not the
// previous batch is still in flight, and sends one batch per partition at a time; fed
// one record per call, a partition whose round trip outgrew the timeout fell further
// behind with every batch. Written together, batches grow with the round trip instead.
type Producer struct {
	w       *kafka.Writer
	group   *groupcommit.Group[kafka.Message, error]
	metrics *observability.Metrics
	tracer  trace.Tracer
}

// maxFlush bounds the messages of one grouped write.
const maxFlush = 10000

// NewProducer returns a producer for the brokers. Concurrent Publish calls are batched
// together for up to batchTimeout (a few milliseconds keeps latency low).
func NewProducer(brokers []string, batchTimeout time.Duration, m *observability.Metrics, tp trace.TracerProvider) *Producer {
	p := &Producer{
		w: &kafka.Writer{
			Addr:         kafka.TCP(brokers...),
			Balancer:     &kafka.Hash{},
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: batchTimeout,
			// kafka-go allocates room for BatchSize messages with every batch it
			// opens (164 KB per one-record publish at 1,000, 24.7 KB at 100), but
			// it sends one batch per partition at a time, so smaller batches drain
			// a backlog in more round trips. Runs at 100 showed slow acks during
			// ramps on an evening too noisy to tell why (docs/benchmarks.md): 1,000
			// stays, as the setting measured good.
			BatchSize:    1000,
			WriteTimeout: 10 * time.Second,
			ReadTimeout:  10 * time.Second,
			Compression:  kafka.Lz4,
		},
		metrics: m,
		tracer:  tp.Tracer("github.com/helmdesk/helmdesk/pkg/events"),
	}
	p.group = &groupcommit.Group[kafka.Message, error]{Write: p.writeGrouped, Max: maxFlush}
	return p
}

// Publish writes the records, each keyed by its envelope's subject, and returns when
// all are durable or one failed.
func (p *Producer) Publish(ctx context.Context, records ...Record) error {
	if len(records) == 0 {
		return nil
	}
	ctx, span := p.tracer.Start(ctx, "kafka publish", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", records[0].Topic), attribute.Int("messaging.batch.message_count", len(records))))
	defer span.End()
	msgs := make([]kafka.Message, len(records))
	for i, r := range records {
		value, err := proto.Marshal(r.Envelope)
		if err != nil {
			return fmt.Errorf("encode %s event: %w", r.Envelope.GetType(), err)
		}
		carrier := headerCarrier{}
		observability.Propagator.Inject(ctx, &carrier)
		msgs[i] = kafka.Message{Topic: r.Topic, Key: []byte(r.Envelope.GetSubject()), Value: value, Headers: carrier.headers}
	}
	if err := p.write(ctx, msgs); err != nil {
		for _, r := range records {
			p.metrics.KafkaProduceErrors.WithLabelValues(r.Topic).Inc()
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
		return fmt.Errorf("publish %d records to %s: %w", len(records), records[0].Topic, err)
	}
	for _, r := range records {
		p.metrics.KafkaProduced.WithLabelValues(r.Topic).Inc()
	}
	return nil
}

// writeGrouped writes the messages of one grouped write; it returns the messages
// that failed by index, or an error for them all.
func (p *Producer) writeGrouped(ctx context.Context, msgs []kafka.Message) (map[int]error, error) {
	err := p.w.WriteMessages(ctx, msgs...)
	var perMsg kafka.WriteErrors
	if !errors.As(err, &perMsg) || len(perMsg) != len(msgs) {
		return nil, err
	}
	failed := map[int]error{}
	for i, e := range perMsg {
		if e != nil {
			failed[i] = e
		}
	}
	return failed, nil
}

// write queues msgs for the next grouped write and waits for it. The write goes
// ahead when the caller gives up; the caller retries (handlers are idempotent, and a
// client resends with the same id).
func (p *Producer) write(ctx context.Context, msgs []kafka.Message) error {
	failed, err := p.group.Do(ctx, msgs)
	if err != nil {
		return err
	}
	for i := range msgs {
		if e, ok := failed[i]; ok {
			return e
		}
	}
	return nil
}

// Close flushes and closes the writer.
func (p *Producer) Close() error {
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("close kafka writer: %w", err)
	}
	return nil
}

// headerCarrier adapts Kafka headers to the OpenTelemetry propagator.
type headerCarrier struct{ headers []kafka.Header }

func (c *headerCarrier) Get(key string) string {
	for _, h := range c.headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c *headerCarrier) Set(key, value string) {
	for i, h := range c.headers {
		if h.Key == key {
			c.headers[i].Value = []byte(value)
			return
		}
	}
	c.headers = append(c.headers, kafka.Header{Key: key, Value: []byte(value)})
}

func (c *headerCarrier) Keys() []string {
	keys := make([]string, len(c.headers))
	for i, h := range c.headers {
		keys[i] = h.Key
	}
	return keys
}

// ContextFrom returns ctx carrying the trace context found in msg's headers.
func ContextFrom(ctx context.Context, msg kafka.Message) context.Context {
	return observability.Propagator.Extract(ctx, &headerCarrier{headers: msg.Headers})
}
