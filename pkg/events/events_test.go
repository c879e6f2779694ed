package events_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/helmdesk/helmdesk/pkg/app/apptest"
	"github.com/helmdesk/helmdesk/pkg/events"
	"github.com/helmdesk/helmdesk/pkg/testdeps"
	eventsv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/events/v1"
)

type recorder struct {
	mu       sync.Mutex
	seen     map[string][]string // subject → payload values in order
	assigned [][]int
	failOnce bool
	failed   bool
	count    int
}

func (r *recorder) HandleBatch(_ context.Context, b events.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failOnce && !r.failed {
		r.failed = true
		return errors.New("transient failure")
	}
	for _, m := range b.Messages {
		env, err := events.Unmarshal(m.Value)
		if err != nil {
			return err
		}
		var v wrapperspb.StringValue
		if err := events.Payload(env, &v); err != nil {
			return err
		}
		r.seen[env.GetSubject()] = append(r.seen[env.GetSubject()], v.GetValue())
		r.count++
	}
	return nil
}

func (r *recorder) Assigned(_ string, partitions []int) {
	r.mu.Lock()
	r.assigned = append(r.assigned, partitions)
	r.mu.Unlock()
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

func publish(t *testing.T, p *events.Producer, from, to int) {
	t.Helper()
	var recs []events.Record
	for i := from; i < to; i++ {
		env, err := events.NewEnvelope("test", "test", fmt.Sprintf("key-%d", i%7), wrapperspb.String(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, events.Record{Topic: "t", Envelope: env})
	}
	if err := p.Publish(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
}

// newProducer creates topic with the given partitions and returns a producer for
// the brokers, closed when the test ends.
func newProducer(tb testing.TB, brokers []string, topic string, partitions int) *events.Producer {
	tb.Helper()
	rt := apptest.Runtime(tb)
	if err := events.EnsureTopics(context.Background(), brokers, events.TopicSpec{Name: topic, Partitions: partitions}); err != nil {
		tb.Fatal(err)
	}
	p := events.NewProducer(brokers, rt.Metrics, rt.Tracer)
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

// publishValues publishes one record per value to topic, one publish each.
func publishValues(t *testing.T, p *events.Producer, topic string, values ...string) {
	t.Helper()
	for _, v := range values {
		env, err := events.NewEnvelope("test", "test", "k", wrapperspb.String(v))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Publish(context.Background(), events.Record{Topic: topic, Envelope: env}); err != nil {
			t.Fatal(err)
		}
	}
}

// assertKeyOrder fails the test when a key's records were consumed out of publish order.
func assertKeyOrder(t *testing.T, rec *recorder) {
	t.Helper()
	for key, vals := range rec.seen {
		prev := -1
		for _, v := range vals {
			var n int
			fmt.Sscan(v, &n)
			if n <= prev {
				t.Fatalf("key %s out of order: %v", key, vals)
			}
			prev = n
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConsumerCommitsOnlyHandledBatchesAndKeepsKeyOrder(t *testing.T) {
	brokers := testdeps.Kafka(t)
	rt := apptest.Runtime(t)
	ctx := context.Background()
	if err := events.EnsureTopics(ctx, brokers, events.TopicSpec{Name: "t", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	// Creating again is not an error.
	if err := events.EnsureTopics(ctx, brokers, events.TopicSpec{Name: "t", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	p := events.NewProducer(brokers, rt.Metrics, rt.Tracer)
	defer p.Close()
	publish(t, p, 0, 200)

	rec := &recorder{seen: map[string][]string{}, failOnce: true}
	cctx, stop := context.WithCancel(ctx)
	c := events.NewConsumer(events.ConsumerConfig{Brokers: brokers, GroupID: "g", Topics: []string{"t"}}, rec, rt.Logger, rt.Metrics, rt.Tracer)
	done := make(chan error, 1)
	go func() { done <- c.Run(cctx) }()
	waitFor(t, "200 records", func() bool { return rec.total() == 200 })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !rec.failed {
		t.Fatal("the failing batch was never retried")
	}
	// Per key, records arrive in publish order.
	assertKeyOrder(t, rec)
	if len(rec.assigned) == 0 {
		t.Fatal("Assigned was not called")
	}

	// A new member of the same group starts after the committed offsets: only new
	// records are handed out.
	publish(t, p, 200, 230)
	rec2 := &recorder{seen: map[string][]string{}}
	cctx2, stop2 := context.WithCancel(ctx)
	c2 := events.NewConsumer(events.ConsumerConfig{Brokers: brokers, GroupID: "g", Topics: []string{"t"}}, rec2, rt.Logger, rt.Metrics, rt.Tracer)
	go func() { done <- c2.Run(cctx2) }()
	waitFor(t, "30 new records", func() bool { return rec2.total() >= 30 })
	time.Sleep(300 * time.Millisecond)
	stop2()
	<-done
	if got := rec2.total(); got != 30 {
		t.Fatalf("second member handled %d records, want exactly the 30 new ones", got)
	}
}

func TestUnmarshalRejectsGarbage(t *testing.T) {
	for _, v := range [][]byte{nil, []byte("garbage"), {0x0a, 0x01, 'x'}} {
		if _, err := events.Unmarshal(v); err == nil {
			t.Fatalf("Unmarshal(%q) accepted", v)
		}
	}
}

func TestStableID(t *testing.T) {
	if events.StableID("a") != events.StableID("a") || events.StableID("a") == events.StableID("b") {
		t.Fatal("StableID must be a function of its name")
	}
}

// A busy handler gets what arrived meanwhile as one batch, even when each record
// reached the reader in a fetch of its own.
func TestBusyHandlerGetsTheQueuedRecordsAsOneBatch(t *testing.T) {
	brokers := testdeps.Kafka(t)
	rt := apptest.Runtime(t)
	ctx := context.Background()
	if err := events.EnsureTopics(ctx, brokers, events.TopicSpec{Name: "busy", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	p := events.NewProducer(brokers, rt.Metrics, rt.Tracer)
	defer p.Close()
	var mu sync.Mutex
	var sizes []int
	total := 0
	h := events.HandlerFunc(func(_ context.Context, b events.Batch) error {
		mu.Lock()
		sizes = append(sizes, len(b.Messages))
		total += len(b.Messages)
		mu.Unlock()
		time.Sleep(40 * time.Millisecond)
		return nil
	})
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	c := events.NewConsumer(events.ConsumerConfig{Brokers: brokers, GroupID: "busy", Topics: []string{"busy"}}, h, rt.Logger, rt.Metrics, rt.Tracer)
	go func() { _ = c.Run(cctx) }()
	const n = 200
	for i := range n {
		env, err := events.NewEnvelope("test", "test", "k", wrapperspb.String(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Publish(ctx, events.Record{Topic: "busy", Envelope: env}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	waitFor(t, "every record handled", func() bool { mu.Lock(); defer mu.Unlock(); return total == n })
	mu.Lock()
	defer mu.Unlock()
	// Records arrive every ~2 ms and each batch takes 40 ms: batches must carry
	// what queued up, not one record each.
	if mean := float64(n) / float64(len(sizes)); mean < 4 {
		t.Fatalf("%d batches for %d records (mean %.1f): queued records were not batched; sizes %v", len(sizes), n, mean, sizes)
	}
}

// Publish calls from many goroutines at once are written together; each caller's
// records are durable when it returns, and each key keeps its order.
func TestConcurrentPublishesKeepEveryRecordAndKeyOrder(t *testing.T) {
	brokers := testdeps.Kafka(t)
	rt := apptest.Runtime(t)
	ctx := context.Background()
	if err := events.EnsureTopics(ctx, brokers, events.TopicSpec{Name: "many", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	p := events.NewProducer(brokers, rt.Metrics, rt.Tracer)
	defer p.Close()
	const writers, each = 200, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				env, err := events.NewEnvelope("test", "test", fmt.Sprintf("key-%d", w), wrapperspb.String(fmt.Sprint(i)))
				if err != nil {
					t.Error(err)
					return
				}
				if err := p.Publish(ctx, events.Record{Topic: "many", Envelope: env}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	rec := &recorder{seen: map[string][]string{}}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	c := events.NewConsumer(events.ConsumerConfig{Brokers: brokers, GroupID: "many", Topics: []string{"many"}}, rec, rt.Logger, rt.Metrics, rt.Tracer)
	go func() { _ = c.Run(cctx) }()
	waitFor(t, "every record", func() bool { return rec.total() >= writers*each })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.count != writers*each || len(rec.seen) != writers {
		t.Fatalf("consumed %d records of %d keys, want %d of %d", rec.count, len(rec.seen), writers*each, writers)
	}
	for key, vals := range rec.seen {
		for i, v := range vals {
			if v != fmt.Sprint(i) {
				t.Fatalf("key %s: got %v, want 0..%d in order", key, vals, each-1)
			}
		}
	}
}

// BenchmarkPublish measures one record published at a time, the common case of a
// chat message: its latency, and the memory each write allocates.
func BenchmarkPublish(b *testing.B) {
	brokers := testdeps.Kafka(b)
	rt := apptest.Runtime(b)
	ctx := context.Background()
	if err := events.EnsureTopics(ctx, brokers, events.TopicSpec{Name: "bench", Partitions: 8}); err != nil {
		b.Fatal(err)
	}
	p := events.NewProducer(brokers, rt.Metrics, rt.Tracer)
	defer p.Close()
	env, err := events.NewEnvelope("test", "test", "key", wrapperspb.String("a chat message of ordinary length"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Publish(ctx, events.Record{Topic: "bench", Envelope: env}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishConcurrently measures the shape of a busy chat: 64 senders, each
// publishing one record at a time under keys spread over 12 partitions. Memory per
// publish shows what the writer allocates for the batches a grouped write opens.
func BenchmarkPublishConcurrently(b *testing.B) {
	p := newProducer(b, testdeps.Kafka(b), "bench", 12)
	ctx := context.Background()
	envs := make([]*eventsv1.Envelope, 256)
	for i := range envs {
		env, err := events.NewEnvelope("test", "test", fmt.Sprintf("session-%d", i), wrapperspb.String("a chat message of ordinary length"))
		if err != nil {
			b.Fatal(err)
		}
		envs[i] = env
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32) // 64 senders on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			env := envs[next.Add(1)%int64(len(envs))]
			if err := p.Publish(ctx, events.Record{Topic: "bench", Envelope: env}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// kafkaWithProduceControl starts a broker whose produce requests pass through
// control first: it may answer one (handled) instead of the broker.
func kafkaWithProduceControl(t *testing.T, control func(*kmsg.ProduceRequest) (*kmsg.ProduceResponse, bool)) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		res, handled := control(req.(*kmsg.ProduceRequest))
		if !handled {
			return nil, nil, false
		}
		return res, nil, true
	})
	return c.ListenAddrs()
}

// failPartitions answers a produce request with code for every partition in it.
func failPartitions(req *kmsg.ProduceRequest, code int16) *kmsg.ProduceResponse {
	res := kmsg.NewPtrProduceResponse()
	res.Version = req.Version
	for _, rt := range req.Topics {
		t := kmsg.NewProduceResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewProduceResponseTopicPartition()
			p.Partition, p.ErrorCode = rp.Partition, code
			t.Partitions = append(t.Partitions, p)
		}
		res.Topics = append(res.Topics, t)
	}
	return res
}

// consumeAll reads n records of topic and returns them by key.
func consumeAll(t *testing.T, brokers []string, topic string, n int) *recorder {
	t.Helper()
	rt := apptest.Runtime(t)
	rec := &recorder{seen: map[string][]string{}}
	cctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	c := events.NewConsumer(events.ConsumerConfig{Brokers: brokers, GroupID: topic, Topics: []string{topic}}, rec, rt.Logger, rt.Metrics, rt.Tracer)
	go func() { _ = c.Run(cctx) }()
	waitFor(t, fmt.Sprint(n, " records"), func() bool { return rec.total() >= n })
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive with its original
	return rec
}

// A grouped write to many partitions of one broker is one produce request; a
// partition whose leader is not ready yet is written again, once, in order.
func TestPublishRetriesAPartitionThatWasNotReady(t *testing.T) {
	var requests, partitions atomic.Int64
	var failed atomic.Bool
	brokers := kafkaWithProduceControl(t, func(req *kmsg.ProduceRequest) (*kmsg.ProduceResponse, bool) {
		requests.Add(1)
		for _, rt := range req.Topics {
			partitions.Add(int64(len(rt.Partitions)))
		}
		if failed.CompareAndSwap(false, true) {
			return failPartitions(req, kerr.NotLeaderForPartition.Code), true
		}
		return nil, false
	})
	p := newProducer(t, brokers, "t", 12)
	publish(t, p, 0, 70) // 7 keys
	if got := requests.Load(); got < 2 {
		t.Fatalf("%d produce requests: the refused write was not tried again", got)
	}
	firstParts := partitions.Load()
	requests.Store(0)
	partitions.Store(0)
	publish(t, p, 70, 140)
	if got := requests.Load(); got != 1 || partitions.Load() < 2 {
		t.Fatalf("a grouped write to %d partitions of one broker took %d produce requests, want 1", partitions.Load(), got)
	}
	rec := consumeAll(t, brokers, "t", 140)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.count != 140 {
		t.Fatalf("consumed %d records, want 140 (each once; first write to %d partitions was refused)", rec.count, firstParts)
	}
	assertKeyOrder(t, rec)
}

// A refusal that trying again cannot fix fails the publish at once, with the
// broker's reason.
func TestPublishFailsOnARefusalWithoutRetrying(t *testing.T) {
	var requests atomic.Int64
	brokers := kafkaWithProduceControl(t, func(req *kmsg.ProduceRequest) (*kmsg.ProduceResponse, bool) {
		requests.Add(1)
		return failPartitions(req, kerr.MessageTooLarge.Code), true
	})
	p := newProducer(t, brokers, "t", 3)
	env, err := events.NewEnvelope("test", "test", "key", wrapperspb.String("x"))
	if err != nil {
		t.Fatal(err)
	}
	err = p.Publish(context.Background(), events.Record{Topic: "t", Envelope: env})
	if !errors.Is(err, kafka.MessageSizeTooLarge) {
		t.Fatalf("publish: %v, want the broker's message-too-large", err)
	}
	if got := requests.Load(); got != 1 {
		t.Fatalf("%d produce requests, want 1 (no retry of a permanent refusal)", got)
	}
}

// A topic that does not exist fails the publish with a clear error.
func TestPublishToAMissingTopicFails(t *testing.T) {
	brokers := kafkaWithProduceControl(t, func(*kmsg.ProduceRequest) (*kmsg.ProduceResponse, bool) { return nil, false })
	rt := apptest.Runtime(t)
	p := events.NewProducer(brokers, rt.Metrics, rt.Tracer)
	defer p.Close()
	env, err := events.NewEnvelope("test", "test", "key", wrapperspb.String("x"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = p.Publish(ctx, events.Record{Topic: "nowhere", Envelope: env})
	if !errors.Is(err, kafka.UnknownTopicOrPartition) {
		t.Fatalf("publish: %v, want unknown topic", err)
	}
}

// A handler can tell whether its partition is still this member's: true while the
// generation lasts, false once it ends (here, on shutdown, while the batch finishes).
func TestStillOwnerEndsWithTheGeneration(t *testing.T) {
	if events.StillOwner(context.Background()) {
		t.Fatal("StillOwner outside a consumer must be false")
	}
	brokers := testdeps.Kafka(t)
	rt := apptest.Runtime(t)
	ctx := context.Background()
	publishValues(t, newProducer(t, brokers, "owner", 1), "owner", "x")
	during, release, after := make(chan bool, 1), make(chan struct{}), make(chan bool, 1)
	var once sync.Once
	h := events.HandlerFunc(func(hctx context.Context, _ events.Batch) error {
		once.Do(func() {
			during <- events.StillOwner(hctx)
			<-release
			deadline := time.Now().Add(10 * time.Second)
			for events.StillOwner(hctx) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			after <- events.StillOwner(hctx)
		})
		return nil
	})
	cctx, stop := context.WithCancel(ctx)
	c := events.NewConsumer(events.ConsumerConfig{Brokers: brokers, GroupID: "owner", Topics: []string{"owner"}}, h, rt.Logger, rt.Metrics, rt.Tracer)
	done := make(chan error, 1)
	go func() { done <- c.Run(cctx) }()
	if !<-during {
		t.Fatal("StillOwner was false while the generation was current")
	}
	stop()
	close(release)
	if <-after {
		t.Fatal("StillOwner stayed true after the member left the group")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// pipeliner starts batches whose second part finishes on its own goroutine after a
// delay, and fails one batch's second part once.
type pipeliner struct {
	mu          sync.Mutex
	started     []int64 // first offsets, in the order StartBatch saw them
	handled     []int64 // first offsets, in the order HandleBatch saw them
	done        map[int64]bool
	running     int
	maxRunning  int
	failAt      int64 // the batch holding this offset fails once on done
	failed      bool
	slowFirstMs int
}

func (p *pipeliner) HandleBatch(_ context.Context, b events.Batch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handled = append(p.handled, b.Messages[0].Offset)
	for _, m := range b.Messages {
		p.done[m.Offset] = true
	}
	return nil
}

func (p *pipeliner) StartBatch(_ context.Context, b events.Batch) (<-chan error, error) {
	p.mu.Lock()
	p.started = append(p.started, b.Messages[0].Offset)
	p.running++
	p.maxRunning = max(p.maxRunning, p.running)
	fail := false
	for _, m := range b.Messages {
		if m.Offset == p.failAt && !p.failed {
			p.failed, fail = true, true
		}
	}
	delay := time.Duration(p.slowFirstMs) * time.Millisecond
	p.slowFirstMs = 0
	p.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		time.Sleep(delay + time.Millisecond)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.running--
		if fail {
			done <- errors.New("insert failed")
			return
		}
		for _, m := range b.Messages {
			p.done[m.Offset] = true
		}
		done <- nil
	}()
	return done, nil
}

// A Pipeliner's batches overlap; a failed one is handled again, with every batch
// after it, in order; only what is done is committed.
func TestPipelinedBatchesOverlapAndAFailureIsHandledAgainInOrder(t *testing.T) {
	brokers := testdeps.Kafka(t)
	rt := apptest.Runtime(t)
	ctx := context.Background()
	prod := newProducer(t, brokers, "pipe", 1)
	const n = 300
	h := &pipeliner{done: map[int64]bool{}, failAt: 150, slowFirstMs: 300}
	cctx, stop := context.WithCancel(ctx)
	c := events.NewConsumer(events.ConsumerConfig{Brokers: brokers, GroupID: "pipe", Topics: []string{"pipe"}, MaxBatch: 5}, h, rt.Logger, rt.Metrics, rt.Tracer)
	finished := make(chan error, 1)
	go func() { finished <- c.Run(cctx) }()
	for i := range n {
		publishValues(t, prod, "pipe", fmt.Sprint(i))
		if i < 20 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(t, "every record done", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(h.done) == n })
	stop()
	if err := <-finished; err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.maxRunning < 2 {
		t.Fatalf("batches never overlapped (at most %d running)", h.maxRunning)
	}
	if !h.failed || len(h.handled) == 0 {
		t.Fatalf("the failed batch was not handled again: failed=%v handled=%v", h.failed, h.handled)
	}
	// The batches handled again are the failed one and the ones started after it, in
	// order.
	first := -1
	for i, off := range h.started {
		if off == h.handled[0] {
			first = i
		}
	}
	if first < 0 || h.handled[0] > 150 {
		t.Fatalf("handled again from offset %d; started %v", h.handled[0], h.started)
	}
	for i, off := range h.handled {
		if first+i >= len(h.started) || h.started[first+i] != off {
			t.Fatalf("handled again %v, want the batches started from %d on: %v", h.handled, h.handled[0], h.started[first:])
		}
	}

	// Everything was committed: a new member of the group gets only new records.
	publishValues(t, prod, "pipe", "new 1", "new 2", "new 3", "new 4", "new 5")
	h2 := &pipeliner{done: map[int64]bool{}, failAt: -1}
	cctx2, stop2 := context.WithCancel(ctx)
	c2 := events.NewConsumer(events.ConsumerConfig{Brokers: brokers, GroupID: "pipe", Topics: []string{"pipe"}}, h2, rt.Logger, rt.Metrics, rt.Tracer)
	go func() { finished <- c2.Run(cctx2) }()
	waitFor(t, "the new records", func() bool { h2.mu.Lock(); defer h2.mu.Unlock(); return len(h2.done) >= 5 })
	time.Sleep(300 * time.Millisecond)
	stop2()
	<-finished
	h2.mu.Lock()
	defer h2.mu.Unlock()
	if len(h2.done) != 5 {
		t.Fatalf("a new member was handed %d records, want the 5 new ones", len(h2.done))
	}
}
