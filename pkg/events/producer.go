package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/produce"
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
// flight at a time, and the calls that arrive meanwhile go out as the next one, so
// writes grow with the load instead of queueing behind each other. A grouped write
// goes out at once as one produce request per partition leader (one request in all on
// a single broker), each partition's records in the order they were published. There
// is no batching timer: the group commit is the batching. Records stay per partition
// in publish order because the next grouped write starts only after this one ended.
type Producer struct {
	client  *kafka.Client
	group   *groupcommit.Group[kafka.Message, error]
	metrics *observability.Metrics
	tracer  trace.Tracer

	mu         sync.Mutex
	partitions map[string]topicLeaders // cached metadata, by topic
}

// topicLeaders is the leader broker of each partition of a topic, by partition id.
type topicLeaders struct {
	leaders []int // broker id by partition, -1 when the partition has no leader
	ids     []int // 0 … len(leaders)-1, as the balancer takes them
	at      time.Time
}

// partitionKey names a topic partition.
type partitionKey struct {
	topic string
	id    int
}

const (
	// maxFlush bounds the messages of one grouped write.
	maxFlush = 10000
	// writeTimeout bounds one grouped write, retries included.
	writeTimeout = 10 * time.Second
	// writeAttempts is how often a partition's records are tried before the callers
	// get the error (they retry in turn: handlers are idempotent, clients resend).
	// The pauses between them add up to 3.15 s, longer than transportMetadataTTL,
	// so a partition whose leader moved is tried again with the new leader.
	writeAttempts = 8
	// metadataTTL is how long partition counts and leaders are trusted without a
	// failure calling them into question.
	metadataTTL = 30 * time.Second
	// transportMetadataTTL is how often the transport refreshes its view of the
	// cluster, which both the leaders here and the routing of requests come from.
	transportMetadataTTL = 2 * time.Second
)

// NewProducer returns a producer for the brokers.
func NewProducer(brokers []string, m *observability.Metrics, tp trace.TracerProvider) *Producer {
	p := &Producer{
		client: &kafka.Client{
			Addr:      kafka.TCP(brokers...),
			Timeout:   writeTimeout,
			Transport: &kafka.Transport{ClientID: "helmdesk", MetadataTTL: transportMetadataTTL},
		},
		metrics:    m,
		tracer:     tp.Tracer("github.com/helmdesk/helmdesk/pkg/events"),
		partitions: map[string]topicLeaders{},
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
//
// The first attempt sends one request per leader. A partition that fails with an
// error worth retrying (no leader, not the leader, a timeout, a dropped connection)
// is tried again after a pause with fresh metadata, one request per partition, up to
// writeAttempts times; other errors fail its records at once.
func (p *Producer) writeGrouped(ctx context.Context, msgs []kafka.Message) (map[int]error, error) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	failed := map[int]error{}
	pending := make([]int, len(msgs))
	for i := range pending {
		pending[i] = i
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			if err := sleepCtx(ctx, retryPause(attempt)); err != nil {
				return nil, err
			}
		}
		refresh := attempt > 0
		parts, err := p.assign(ctx, msgs, pending, refresh)
		if err != nil {
			if attempt+1 < writeAttempts && retriable(err) && ctx.Err() == nil {
				continue
			}
			return nil, err
		}
		retry := p.produce(ctx, msgs, parts, attempt == 0, failed)
		pending = pending[:0]
		for _, part := range retry {
			if attempt+1 >= writeAttempts || ctx.Err() != nil {
				for _, i := range part.records {
					failed[i] = part.err
				}
				continue
			}
			pending = append(pending, part.records...)
		}
		slices.Sort(pending) // publish order within each partition
	}
	if len(failed) == 0 {
		return nil, nil
	}
	return failed, nil
}

// partition is the records of one grouped write bound for one topic partition.
type partition struct {
	topic   string
	id      int
	leader  int
	records []int // indexes into the grouped write, in publish order
	err     error // set when its write failed with an error worth retrying
}

// assign maps each pending message to its topic partition (by its key, as
// kafka-go's Hash balancer does, so a subject keeps its partition). Each topic's
// leaders are looked up once; refresh reads them again from the transport.
func (p *Producer) assign(ctx context.Context, msgs []kafka.Message, pending []int, refresh bool) ([]*partition, error) {
	var parts []*partition
	index := map[partitionKey]*partition{}
	topics := map[string]topicLeaders{}
	var balancer kafka.Hash
	for _, i := range pending {
		m := msgs[i]
		tl, ok := topics[m.Topic]
		if !ok {
			var err error
			if tl, err = p.leaders(ctx, m.Topic, refresh); err != nil {
				return nil, err
			}
			topics[m.Topic] = tl
		}
		id := balancer.Balance(m, tl.ids...)
		key := partitionKey{m.Topic, id}
		part := index[key]
		if part == nil {
			part = &partition{topic: m.Topic, id: id, leader: tl.leaders[id]}
			index[key] = part
			parts = append(parts, part)
		}
		part.records = append(part.records, i)
	}
	return parts, nil
}

// leaders returns the partitions of a topic and their leaders, from the cache unless
// it is old or refresh is set.
func (p *Producer) leaders(ctx context.Context, topic string, refresh bool) (topicLeaders, error) {
	p.mu.Lock()
	tl, ok := p.partitions[topic]
	p.mu.Unlock()
	if ok && !refresh && time.Since(tl.at) < metadataTTL {
		return tl, nil
	}
	// The transport answers from its view of the cluster (refreshed every
	// transportMetadataTTL), the one it routes requests by.
	res, err := p.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return topicLeaders{}, fmt.Errorf("read metadata of topic %s: %w", topic, err)
	}
	for _, t := range res.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return topicLeaders{}, fmt.Errorf("read metadata of topic %s: %w", topic, t.Error)
		}
		if len(t.Partitions) == 0 {
			break
		}
		tl = topicLeaders{leaders: make([]int, len(t.Partitions)), ids: make([]int, len(t.Partitions)), at: time.Now()}
		for i := range tl.leaders {
			tl.leaders[i], tl.ids[i] = -1, i
		}
		for _, part := range t.Partitions {
			if part.ID < 0 || part.ID >= len(tl.leaders) {
				return topicLeaders{}, fmt.Errorf("read metadata of topic %s: partition %d of %d", topic, part.ID, len(tl.leaders))
			}
			if part.Error == nil {
				tl.leaders[part.ID] = part.Leader.ID
			}
		}
		p.mu.Lock()
		p.partitions[topic] = tl
		p.mu.Unlock()
		return tl, nil
	}
	return topicLeaders{}, fmt.Errorf("read metadata of topic %s: %w", topic, kafka.UnknownTopicOrPartition)
}

// produce writes the partitions: one request per leader when byLeader is set, else
// one per partition, all at once. Records that failed for good go into failed; the
// partitions worth retrying are returned with their error.
func (p *Producer) produce(ctx context.Context, msgs []kafka.Message, parts []*partition, byLeader bool, failed map[int]error) []*partition {
	var requests [][]*partition
	byID := map[int]int{}
	for _, part := range parts {
		if part.leader < 0 {
			part.err = fmt.Errorf("produce to %s/%d: %w", part.topic, part.id, kafka.LeaderNotAvailable)
			continue
		}
		n, ok := byID[part.leader]
		if !ok || !byLeader {
			n = len(requests)
			byID[part.leader] = n
			requests = append(requests, nil)
		}
		requests[n] = append(requests[n], part)
	}
	now := time.Now()
	if len(requests) == 1 {
		p.produceRequest(ctx, msgs, requests[0], now)
	} else {
		var wg sync.WaitGroup
		for _, req := range requests {
			wg.Go(func() { p.produceRequest(ctx, msgs, req, now) })
		}
		wg.Wait()
	}
	var retry []*partition
	for _, part := range parts {
		switch {
		case part.err == nil:
		case retriable(part.err):
			retry = append(retry, part)
		default:
			for _, i := range part.records {
				if _, ok := failed[i]; !ok {
					failed[i] = part.err
				}
			}
		}
	}
	return retry
}

// produceRequest sends the partitions (which share a leader) in one produce request
// and records each partition's outcome in its err; failures of single records go
// straight into the partition's err as well (the whole partition is then retried or
// failed: Kafka wrote none of a batch with a record error).
func (p *Producer) produceRequest(ctx context.Context, msgs []kafka.Message, parts []*partition, now time.Time) {
	req := &produce.Request{Acks: int16(kafka.RequireAll), Timeout: timeoutMs(ctx)}
	for _, part := range parts {
		records := make([]kafka.Record, len(part.records))
		for j, i := range part.records {
			m := msgs[i]
			records[j] = kafka.Record{Time: now, Key: kafka.NewBytes(m.Key), Value: kafka.NewBytes(m.Value), Headers: m.Headers}
		}
		rp := produce.RequestPartition{Partition: int32(part.id), RecordSet: protocol.RecordSet{Records: kafka.NewRecordReader(records...)}}
		if n := len(req.Topics); n > 0 && req.Topics[n-1].Topic == part.topic {
			req.Topics[n-1].Partitions = append(req.Topics[n-1].Partitions, rp)
		} else {
			req.Topics = append(req.Topics, produce.RequestTopic{Topic: part.topic, Partitions: []produce.RequestPartition{rp}})
		}
		part.err = nil
	}
	m, err := p.client.Transport.RoundTrip(ctx, p.client.Addr, req)
	if err != nil {
		// The request did not get an answer: the connection failed, or the
		// transport's view of the leaders differs from ours. Worth another try.
		for _, part := range parts {
			part.err = fmt.Errorf("produce to %s/%d: %w", part.topic, part.id, transportError{err})
		}
		return
	}
	res, _ := m.(*produce.Response)
	answered := map[partitionKey]produce.ResponsePartition{}
	if res != nil {
		for _, t := range res.Topics {
			for _, rp := range t.Partitions {
				answered[partitionKey{t.Topic, int(rp.Partition)}] = rp
			}
		}
	}
	for _, part := range parts {
		rp, ok := answered[partitionKey{part.topic, part.id}]
		switch {
		case !ok:
			part.err = fmt.Errorf("produce to %s/%d: %w", part.topic, part.id, kafka.RequestTimedOut)
		case rp.ErrorCode != 0:
			part.err = fmt.Errorf("produce to %s/%d: %w", part.topic, part.id, kafka.Error(rp.ErrorCode))
		case len(rp.RecordErrors) > 0:
			part.err = fmt.Errorf("produce to %s/%d: record %d: %s", part.topic, part.id, rp.RecordErrors[0].BatchIndex, rp.RecordErrors[0].BatchIndexErrorMessage)
		}
	}
}

// transportError is a produce request that got no answer; it is worth retrying
// unless the write's time is up.
type transportError struct{ error }

func (e transportError) Unwrap() error { return e.error }

func (e transportError) Temporary() bool {
	return !errors.Is(e.error, context.Canceled) && !errors.Is(e.error, context.DeadlineExceeded)
}

// retriable reports whether a write that failed with err may succeed if tried
// again: a broker's temporary error (no leader yet, not the leader, a timeout) or a
// connection that failed.
func retriable(err error) bool {
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// retryPause is the pause before the given attempt: 50 ms doubling to 800 ms.
func retryPause(attempt int) time.Duration {
	return min(50*time.Millisecond<<(attempt-1), 800*time.Millisecond)
}

// timeoutMs is how long the broker may wait for the replicas, in milliseconds.
func timeoutMs(ctx context.Context) int32 {
	d := writeTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	return int32(max(d.Milliseconds(), 1))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
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

// Close closes the producer's idle connections; a Publish still running goes on.
func (p *Producer) Close() error {
	if t, ok := p.client.Transport.(*kafka.Transport); ok {
		t.CloseIdleConnections()
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
