package session

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/helmdesk/helmdesk/pkg/events"
	"github.com/helmdesk/helmdesk/pkg/frames"
)

func TestContinues(t *testing.T) {
	fresh := func(seq int64) *pending { return &pending{msg: Message{Seq: seq}} }
	repeat := func(seq int64) *pending { return &pending{msg: Message{Seq: seq}, dup: true} }
	tests := []struct {
		name string
		ps   []*pending
		want bool
	}{
		{"next seqs", []*pending{fresh(3), fresh(4)}, true},
		{"a repeat of a stored message, then the next seq", []*pending{repeat(1), fresh(3)}, true},
		{"a repeat of a message earlier in the batch", []*pending{fresh(3), repeat(3)}, true},
		{"repeats only", []*pending{repeat(2)}, true},
		{"a skipped seq", []*pending{fresh(4)}, false},
		{"a seq given out again (state behind storage)", []*pending{fresh(2)}, false},
		{"a repeat of a seq this process never stored", []*pending{repeat(3)}, false},
		{"out of order", []*pending{fresh(4), fresh(3)}, false},
	}
	for _, tt := range tests {
		if got := continues(2, tt.ps); got != tt.want {
			t.Errorf("%s: continues = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// frameSeqs collects the seq → client id of message frames published on sub.
func frameSeqs(t *testing.T, sub *redis.PubSub, got chan<- [2]string) {
	t.Helper()
	go func() {
		for m := range sub.Channel() {
			_, body, err := frames.Decode([]byte(m.Payload))
			if err != nil {
				continue
			}
			var fr frames.Message
			if json.Unmarshal(body, &fr) == nil {
				got <- [2]string{fmt.Sprint(fr.Seq), fr.ClientMsgID}
			}
		}
	}()
}

func subscribe(t *testing.T, f *fixture, channel string) chan [2]string {
	t.Helper()
	sub := f.rdb.Subscribe(context.Background(), channel)
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := make(chan [2]string, 100)
	frameSeqs(t, sub, got)
	return got
}

// insertHook runs before each of the service's inserts; set it before the first.
type insertHook struct {
	mu     sync.Mutex
	before func(msgs []Message) error
}

func hookInserts(f *fixture) *insertHook {
	h := &insertHook{}
	insert := f.svc.inserts.Write
	f.svc.inserts.Write = func(ctx context.Context, msgs []Message) (map[int]bool, error) {
		h.mu.Lock()
		before := h.before
		h.mu.Unlock()
		if before != nil {
			if err := before(msgs); err != nil {
				return nil, err
			}
		}
		return insert(ctx, msgs)
	}
	return h
}

func (h *insertHook) set(before func(msgs []Message) error) {
	h.mu.Lock()
	h.before = before
	h.mu.Unlock()
}

// hold makes inserts wait until release is called.
func (h *insertHook) hold() (release func()) {
	gate := make(chan struct{})
	h.set(func([]Message) error { <-gate; return nil })
	return func() { h.set(nil); close(gate) }
}

func expectFrame(t *testing.T, got <-chan [2]string, want string) {
	t.Helper()
	select {
	case fr := <-got:
		if s := fr[0] + ":" + fr[1]; s != want {
			t.Fatalf("frame %s, want %s", s, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no frame; want %s", want)
	}
}

// A session whose seqs continue what this process stored is fanned out before its
// insert; the first batch, a batch after a rebalance and a batch handled by a member
// that no longer owns the partition wait for the insert.
func TestOwnedSessionsAreFannedOutBeforeTheInsert(t *testing.T) {
	f := newFixture(t)
	hook := hookInserts(f)
	gen, endGeneration := context.WithCancel(context.Background())
	defer endGeneration()
	ctx := events.WithGeneration(context.Background(), gen)
	f.newSession(t, "s1", "agent-1")
	got := subscribe(t, f, frames.SessionChannel("s1"))
	fanouts := func(when string) float64 { return testutil.ToFloat64(f.svc.metrics.fanouts.WithLabelValues(when)) }

	// handle runs a batch of msg with inserts held and reports whether its frame came
	// out before the insert.
	handle := func(msg in, want string) (early bool) {
		t.Helper()
		release := hook.hold()
		done := make(chan error, 1)
		go func() { done <- f.svc.HandleBatch(ctx, batch(t, msg)) }()
		select {
		case fr := <-got:
			if s := fr[0] + ":" + fr[1]; s != want {
				t.Fatalf("frame %s before the insert, want %s", s, want)
			}
			early = true
		case <-time.After(300 * time.Millisecond):
		}
		release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !early {
			expectFrame(t, got, want)
		}
		return early
	}

	if handle(in{"s1", "a", "1"}, "1:a") {
		t.Fatal("the first batch of a session was fanned out before its insert")
	}
	if !handle(in{"s1", "b", "2"}, "2:b") {
		t.Fatal("a batch continuing stored seqs waited for its insert")
	}
	// The watermark moves only once the insert is done.
	if n, err := f.rdb.Get(context.Background(), storedKey("s1")).Int64(); err != nil || n != 2 {
		t.Fatalf("stored watermark %d (%v), want 2", n, err)
	}
	if fanouts("before_store") != 1 || fanouts("after_store") != 1 {
		t.Fatalf("fan-outs before/after the insert: %v/%v, want 1/1", fanouts("before_store"), fanouts("after_store"))
	}
	f.svc.Assigned(events.TopicInbound, []int{0})
	if handle(in{"s1", "c", "3"}, "3:c") {
		t.Fatal("the first batch after a rebalance was fanned out before its insert")
	}
	if !handle(in{"s1", "d", "4"}, "4:d") {
		t.Fatal("a batch continuing stored seqs waited for its insert")
	}
	endGeneration()
	if handle(in{"s1", "e", "5"}, "5:e") {
		t.Fatal("a member that no longer owns the partition fanned out before the insert")
	}
	if got, want := seqsAndIDs(f.stored(t, "s1")), "1:a 2:b 3:c 4:d 5:e "; got != want {
		t.Fatalf("stored %q, want %q", got, want)
	}
}

// Redis restored from an older snapshot gives out a seq again; that batch is not
// fanned out before the insert refuses it, so no client sees a seq carry the wrong
// message.
func TestStaleStateIsNeverFannedOut(t *testing.T) {
	f := newFixture(t)
	ctx := events.WithGeneration(context.Background(), context.Background())
	f.newSession(t, "s1", "")
	got := subscribe(t, f, frames.SessionChannel("s1"))
	for _, m := range []in{{"s1", "a", "1"}, {"s1", "b", "2"}} {
		if err := f.svc.HandleBatch(ctx, batch(t, m)); err != nil {
			t.Fatal(err)
		}
	}
	expectFrame(t, got, "1:a")
	expectFrame(t, got, "2:b")
	// The snapshot: seq 1, b unknown.
	if err := f.rdb.HSet(ctx, stateKey("s1"), "seq", 1).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.HDel(ctx, idsKey("s1"), "b").Err(); err != nil {
		t.Fatal(err)
	}
	b := batch(t, in{"s1", "c", "3"}) // c is given seq 2, which is b's
	if err := f.svc.HandleBatch(ctx, b); err == nil {
		t.Fatal("stale state was not detected")
	}
	if err := f.svc.HandleBatch(ctx, b); err != nil { // the consumer's retry
		t.Fatal(err)
	}
	expectFrame(t, got, "3:c")
	select {
	case fr := <-got:
		t.Fatalf("unexpected frame %s:%s", fr[0], fr[1])
	case <-time.After(200 * time.Millisecond):
	}
	if got, want := seqsAndIDs(f.stored(t, "s1")), "1:a 2:b 3:c "; got != want {
		t.Fatalf("stored %q, want %q", got, want)
	}
}

// A history read that MongoDB answers goes on from the recent buffer when the newest
// messages are fanned out but not yet stored.
func TestHistoryFromStorageEndsWithMessagesNotYetStored(t *testing.T) {
	f := newFixture(t)
	hook := hookInserts(f)
	ctx := events.WithGeneration(context.Background(), context.Background())
	f.newSession(t, "s1", "")
	var msgs []in
	for i := range 25 { // more than the fixture's recent buffer (20)
		msgs = append(msgs, in{"s1", fmt.Sprint("m", i+1), "x"})
	}
	if err := f.svc.HandleBatch(ctx, batch(t, msgs...)); err != nil {
		t.Fatal(err)
	}
	release := hook.hold()
	done := make(chan error, 1)
	go func() { done <- f.svc.HandleBatch(ctx, batch(t, in{"s1", "m26", "x"})) }()
	defer func() {
		release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		newest, err := f.rdb.LIndex(ctx, recentKey("s1"), -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		var m frames.Message
		if json.Unmarshal([]byte(newest), &m) == nil && m.Seq == 26 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("seq 26 never reached the recent buffer")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Seq 1 is older than the buffer: MongoDB has 2–25, the buffer 26.
	out, more, err := f.svc.ListMessages(ctx, "s1", 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 25 || out[0].Seq != 2 || out[24].Seq != 26 || more {
		t.Fatalf("ListMessages(after 1) = %d messages (%d…%d), more=%v; want 2…26, no more", len(out), out[0].Seq, out[len(out)-1].Seq, more)
	}
}

// Started batches fan out before their inserts and finish in order; a batch whose
// predecessor failed fails too, and no stored watermark moves past the messages that
// were not stored.
func TestStartedBatchesFinishInOrder(t *testing.T) {
	f := newFixture(t)
	hook := hookInserts(f)
	ctx := events.WithGeneration(context.Background(), context.Background())
	f.newSession(t, "s1", "")
	got := subscribe(t, f, frames.SessionChannel("s1"))
	if err := f.svc.HandleBatch(ctx, batch(t, in{"s1", "a", "1"})); err != nil {
		t.Fatal(err)
	}
	expectFrame(t, got, "1:a")
	start := func(m in) <-chan error {
		t.Helper()
		done, err := f.svc.StartBatch(ctx, batch(t, m))
		if err != nil {
			t.Fatal(err)
		}
		return done
	}
	watermark := func() int64 {
		t.Helper()
		n, err := f.rdb.Get(context.Background(), storedKey("s1")).Int64()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	release := hook.hold()
	doneB := start(in{"s1", "b", "2"})
	expectFrame(t, got, "2:b")
	doneC := start(in{"s1", "c", "3"}) // continues b, not yet stored
	expectFrame(t, got, "3:c")
	select {
	case <-doneB:
		t.Fatal("a batch finished while its insert was held")
	case <-doneC:
		t.Fatal("a batch finished while its insert was held")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	if err := <-doneC; err != nil {
		t.Fatal(err)
	}
	if w := watermark(); w != 3 {
		t.Fatalf("stored watermark %d, want 3", w)
	}

	// d's insert fails after e's was queued behind it; e's insert succeeds.
	entered, gate := make(chan struct{}), make(chan struct{})
	hook.set(func(msgs []Message) error {
		if msgs[0].ClientMsgID == "d" {
			close(entered)
			<-gate
			return fmt.Errorf("insert failed")
		}
		return nil
	})
	doneD := start(in{"s1", "d", "4"})
	<-entered
	doneE := start(in{"s1", "e", "5"})
	expectFrame(t, got, "4:d")
	expectFrame(t, got, "5:e")
	close(gate)
	if err := <-doneD; err == nil {
		t.Fatal("a failed insert did not fail its batch")
	}
	if err := <-doneE; err == nil {
		t.Fatal("the batch after a failed one did not fail")
	}
	if w := watermark(); w != 3 {
		t.Fatalf("stored watermark %d after d failed, want 3", w)
	}
	// The consumer hands both over again, in order.
	hook.set(nil)
	for _, m := range []in{{"s1", "d", "4"}, {"s1", "e", "5"}} {
		if err := f.svc.HandleBatch(ctx, batch(t, m)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := seqsAndIDs(f.stored(t, "s1")), "1:a 2:b 3:c 4:d 5:e "; got != want {
		t.Fatalf("stored %q, want %q", got, want)
	}
}
