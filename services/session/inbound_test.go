package session

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/helmdesk/helmdesk/pkg/app/apptest"
	"github.com/helmdesk/helmdesk/pkg/events"
	"github.com/helmdesk/helmdesk/pkg/frames"
	"github.com/helmdesk/helmdesk/pkg/testdeps"
	eventsv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/events/v1"
)

type fixture struct {
	svc *Service
	rdb *redis.Client
	db  *mongo.Database
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	uri, dbName := testdeps.Mongo(t)
	brokers := testdeps.Kafka(t)
	raddr := testdeps.Redis(t)
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	rdb := redis.NewClient(&redis.Options{Addr: raddr})
	t.Cleanup(func() { _ = rdb.Close() })
	rt := apptest.Runtime(t)
	if err := events.EnsureTopics(ctx, brokers, events.TopicSpec{Name: events.TopicEvents, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	prod := events.NewProducer(brokers, rt.Metrics, rt.Tracer)
	t.Cleanup(func() { _ = prod.Close() })
	db := client.Database(dbName)
	svc, err := New(ctx, Config{ConsumerGroup: "session", StateTTL: time.Hour, RecentSize: 20}, Deps{Runtime: rt, Mongo: db, Redis: rdb, Producer: prod, Brokers: brokers, Keyring: testKeyring(t, "k1", "i1")})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, rdb: rdb, db: db}
}

// newSession stores a session directly, as CreateSession would before routing.
func (f *fixture) newSession(t *testing.T, id, agent string) {
	t.Helper()
	s := Session{ID: id, CustomerID: "c-" + id, UserID: "u-" + id, Channel: "web", Profile: map[string]any{}, Status: StatusQueued, CreatedAt: time.Now().UTC()}
	if agent != "" {
		s.Status, s.AgentID = StatusAssigned, agent
	}
	if err := f.svc.repo.insertSession(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.state.create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// newSessionState installs a stored session's state again (after a drop).
func (f *fixture) newSessionState(t *testing.T, id string) {
	t.Helper()
	s, err := f.svc.repo.getSession(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.state.install(context.Background(), s, nil); err != nil {
		t.Fatal(err)
	}
}

type in struct{ sid, cmid, text string }

var offset int64

// batch is an inbound batch of customer messages.
func batch(t *testing.T, msgs ...in) events.Batch {
	t.Helper()
	return batchFrom(t, func(sid string) *eventsv1.Sender { return &eventsv1.Sender{Type: frames.SenderCustomer, Id: sid} }, msgs...)
}

// agentBatch is an inbound batch of messages by agent.
func agentBatch(t *testing.T, agent string, msgs ...in) events.Batch {
	t.Helper()
	return batchFrom(t, func(string) *eventsv1.Sender { return &eventsv1.Sender{Type: frames.SenderAgent, Id: agent} }, msgs...)
}

func batchFrom(t *testing.T, sender func(sid string) *eventsv1.Sender, msgs ...in) events.Batch {
	t.Helper()
	b := events.Batch{Topic: events.TopicInbound}
	for _, m := range msgs {
		env, err := events.NewEnvelope(events.TypeInboundMessage, "gateway", m.sid, &eventsv1.InboundMessage{
			SessionId: m.sid, ClientMsgId: m.cmid, Sender: sender(m.sid), Text: m.text, ReceivedAt: timestamppb.Now(),
		})
		if err != nil {
			t.Fatal(err)
		}
		v, _ := proto.Marshal(env)
		offset++
		b.Messages = append(b.Messages, kafka.Message{Offset: offset, Value: v})
	}
	return b
}

func (f *fixture) stored(t *testing.T, sid string) []Message {
	t.Helper()
	msgs, err := f.svc.repo.messagesAfter(context.Background(), sid, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func seqsAndIDs(msgs []Message) string {
	s := ""
	for _, m := range msgs {
		s += fmt.Sprintf("%d:%s ", m.Seq, m.ClientMsgID)
	}
	return s
}

func TestHandleBatchSequencesDeduplicatesAndFansOut(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.newSession(t, "s1", "agent-1")
	f.newSession(t, "s2", "")
	sub := f.rdb.Subscribe(ctx, frames.SessionChannel("s1"), frames.AgentChannel("agent-1"))
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}

	// One batch interleaving two sessions, with a repeat inside the batch.
	if err := f.svc.HandleBatch(ctx, batch(t, in{"s1", "a", "hi"}, in{"s2", "x", "yo"}, in{"s1", "b", "there"}, in{"s1", "a", "hi"})); err != nil {
		t.Fatal(err)
	}
	// A later batch repeating an old id and adding a new one (a client retry after a
	// lost ack, then a new message).
	if err := f.svc.HandleBatch(ctx, batch(t, in{"s1", "b", "there"}, in{"s1", "c", "!"})); err != nil {
		t.Fatal(err)
	}
	if got, want := seqsAndIDs(f.stored(t, "s1")), "1:a 2:b 3:c "; got != want {
		t.Fatalf("s1 stored %q, want %q", got, want)
	}
	if got, want := seqsAndIDs(f.stored(t, "s2")), "1:x "; got != want {
		t.Fatalf("s2 stored %q, want %q", got, want)
	}

	// Every message frame reaches both the session and the agent channel; repeats are
	// fanned out again with their original seq (clients drop seqs they have).
	seen := map[string][]int64{}
	deadline := time.After(5 * time.Second)
	for len(seen[frames.SessionChannel("s1")]) < 5 || len(seen[frames.AgentChannel("agent-1")]) < 5 {
		select {
		case m := <-sub.Channel():
			_, body, err := frames.Decode([]byte(m.Payload))
			if err != nil {
				t.Fatal(err)
			}
			var fr frames.Message
			if err := json.Unmarshal(body, &fr); err != nil {
				t.Fatal(err)
			}
			seen[m.Channel] = append(seen[m.Channel], fr.Seq)
		case <-deadline:
			t.Fatalf("fan-out incomplete: %v", seen)
		}
	}
	if got := fmt.Sprint(seen[frames.SessionChannel("s1")]); got != "[1 2 1 2 3]" {
		t.Fatalf("session channel seqs %s", got)
	}

	// History is served from the recent buffer and from MongoDB alike.
	msgs, more, err := f.svc.ListMessages(ctx, "s1", 1, 10)
	if err != nil || more || len(msgs) != 2 || msgs[0].Seq != 2 || msgs[1].Text != "!" {
		t.Fatalf("ListMessages = %+v more=%v err=%v", msgs, more, err)
	}
	if err := f.rdb.Del(ctx, recentKey("s1")).Err(); err != nil {
		t.Fatal(err)
	}
	msgs, _, err = f.svc.ListMessages(ctx, "s1", 0, 2)
	if err != nil || len(msgs) != 2 || msgs[1].Seq != 2 {
		t.Fatalf("ListMessages from storage = %+v err=%v", msgs, err)
	}
}

func TestHandleBatchRecoversLostState(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(t *testing.T, f *fixture)
	}{
		{"state expired from redis", func(t *testing.T, f *fixture) {
			if err := f.rdb.Del(context.Background(), stateKey("s1"), idsKey("s1")).Err(); err != nil {
				t.Fatal(err)
			}
		}},
		{"redis restored from an older snapshot", func(t *testing.T, f *fixture) {
			ctx := context.Background()
			if err := f.rdb.HSet(ctx, stateKey("s1"), "seq", 1).Err(); err != nil {
				t.Fatal(err)
			}
			if err := f.rdb.HDel(ctx, idsKey("s1"), "b").Err(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			f.newSession(t, "s1", "")
			if err := f.svc.HandleBatch(ctx, batch(t, in{"s1", "a", "1"}, in{"s1", "b", "2"})); err != nil {
				t.Fatal(err)
			}
			tt.break_(t, f)
			// A replay of b (as after a crash before the commit) and a new message c.
			b := batch(t, in{"s1", "b", "2"}, in{"s1", "c", "3"})
			err := f.svc.HandleBatch(ctx, b)
			if err != nil {
				// Stale state is detected and dropped; the consumer retries the batch.
				if err = f.svc.HandleBatch(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := seqsAndIDs(f.stored(t, "s1")), "1:a 2:b 3:c "; got != want {
				t.Fatalf("stored %q, want %q", got, want)
			}
		})
	}
}

// The first agent message of a session is its first response (FRT = first_response_at
// - created_at): recorded once, and never moved by later replies, by the state being
// lost from Redis, or by a replay of the batch.
func TestFirstResponseIsRecordedOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.newSession(t, "s1", "a1")
	f.newSession(t, "s2", "a1")
	firstResponse := func(sid string) *time.Time {
		t.Helper()
		s, err := f.svc.repo.getSession(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		return s.FirstResponseAt
	}
	if err := f.svc.HandleBatch(ctx, batch(t, in{"s1", "c1", "hello"}, in{"s2", "c1", "hi"})); err != nil {
		t.Fatal(err)
	}
	if at := firstResponse("s1"); at != nil {
		t.Fatalf("first response %v before any agent message", at)
	}
	replies := agentBatch(t, "a1", in{"s1", "r1", "how can I help?"}, in{"s1", "r2", "still there?"})
	if err := f.svc.HandleBatch(ctx, replies); err != nil {
		t.Fatal(err)
	}
	stored := f.stored(t, "s1")
	if len(stored) != 3 || stored[1].ClientMsgID != "r1" {
		t.Fatalf("stored %q, want c1 r1 r2", seqsAndIDs(stored))
	}
	at := firstResponse("s1")
	if at == nil || !at.Equal(stored[1].CreatedAt) {
		t.Fatalf("first response at %v, want the first reply's time %v", at, stored[1].CreatedAt)
	}
	if got := firstResponse("s2"); got != nil {
		t.Errorf("s2 has a first response %v without an agent message", got)
	}

	// A replay of the replies, then a later one: neither moves the first response.
	time.Sleep(5 * time.Millisecond)
	if err := f.svc.HandleBatch(ctx, replies); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.HandleBatch(ctx, agentBatch(t, "a1", in{"s1", "r3", "bye"})); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.state.drop(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.HandleBatch(ctx, agentBatch(t, "a1", in{"s1", "r4", "one more thing"}, in{"s2", "r1", "hello"})); err != nil {
		t.Fatal(err)
	}
	if got := firstResponse("s1"); got == nil || !got.Equal(*at) {
		t.Errorf("first response moved from %v to %v", at, got)
	}
	s2 := f.stored(t, "s2")
	if got := firstResponse("s2"); got == nil || !got.Equal(s2[len(s2)-1].CreatedAt) {
		t.Errorf("s2 first response at %v, want its reply's time %v", got, s2[len(s2)-1].CreatedAt)
	}
}

func TestHandleBatchSkipsPoisonAndUnknownSessions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.newSession(t, "s1", "")
	b := batch(t, in{"missing", "a", "x"}, in{"s1", "a", "ok"})
	b.Messages = append(b.Messages, kafka.Message{Offset: 99, Value: []byte("not protobuf")})
	if err := f.svc.HandleBatch(ctx, b); err != nil {
		t.Fatalf("poison records must not block the partition: %v", err)
	}
	if got := seqsAndIDs(f.stored(t, "s1")); got != "1:a " {
		t.Fatalf("stored %q", got)
	}
	n, err := f.db.Collection(collMessages).CountDocuments(ctx, bson.M{"session_id": "missing"})
	if err != nil || n != 0 {
		t.Fatalf("messages of unknown session stored: %d %v", n, err)
	}
}

// The recent buffer answers a reader when it covers the start of the range; a hole
// (a batch replayed out of order, or partly) or a range older than the buffer sends
// the reader to MongoDB; a buffer that ends early answers with what it has.
func TestRecentBufferCoverage(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testdeps.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	st := &stateStore{rdb: rdb}
	tests := []struct {
		name     string
		buffered []int64
		after    int64
		limit    int
		want     string // seqs returned, or "miss" and why
	}{
		{"empty buffer", nil, 0, 10, "miss empty"},
		{"in order", []int64{1, 2, 3}, 1, 10, "[2 3]"},
		{"everything read", []int64{1, 2, 3}, 3, 10, "[]"},
		{"ends before last: in flight", []int64{4, 5}, 3, 10, "[4 5]"},
		{"older history needed", []int64{5, 6, 7}, 2, 10, "miss older"},
		{"starts right after", []int64{5, 6, 7}, 4, 10, "[5 6 7]"},
		{"out of order", []int64{1, 2, 4, 3, 5}, 1, 10, "[2 3 4 5]"},
		{"repeats", []int64{1, 2, 2, 3, 1}, 0, 10, "[1 2 3]"},
		{"hole", []int64{1, 2, 4, 5}, 1, 10, "miss hole"},
		{"a hole past the limit does not matter", []int64{1, 2, 3, 5}, 0, 2, "[1 2]"},
		{"limit", []int64{1, 2, 3, 4}, 0, 2, "[1 2]"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sid := fmt.Sprintf("rb%d", i)
			for _, seq := range tt.buffered {
				b, err := json.Marshal(frames.Message{Type: frames.TypeMessage, SessionID: sid, Seq: seq, Text: "x"})
				if err != nil {
					t.Fatal(err)
				}
				if err := rdb.RPush(ctx, recentKey(sid), b).Err(); err != nil {
					t.Fatal(err)
				}
			}
			msgs, miss, err := st.recentAfter(ctx, sid, tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			got := "miss " + miss
			if miss == "" {
				seqs := []int64{}
				for _, m := range msgs {
					seqs = append(seqs, m.Seq)
				}
				got = fmt.Sprint(seqs)
			}
			if got != tt.want {
				t.Fatalf("recentAfter(%d) over %v = %s, want %s", tt.after, tt.buffered, got, tt.want)
			}
		})
	}
}

// An empty recent buffer answers a history read only while the stored watermark shows
// MongoDB has nothing newer: a new session's first messages still on their way. A
// buffer that expired with its watermark, or an erased one, sends the reader to MongoDB.
func TestEmptyRecentBufferAndTheStoredWatermark(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	reads := func(source, miss string) float64 {
		return testutil.ToFloat64(f.svc.metrics.historyReads.WithLabelValues(source, miss))
	}
	f.newSession(t, "new", "agent-1")
	// The first message is sequenced but not yet persisted: nothing to read, from Redis.
	if _, _, err := f.svc.state.assignAll(ctx, []string{"new"}, map[string][]string{"new": {"c1"}}); err != nil {
		t.Fatal(err)
	}
	// (more is true: seq 1 exists and arrives live once stored.)
	msgs, more, err := f.svc.ListMessages(ctx, "new", 0, 50)
	if err != nil || len(msgs) != 0 || !more {
		t.Fatalf("new session, first message in flight: %v more=%v err=%v", msgs, more, err)
	}
	if reads("recent", "") != 1 || reads("mongodb", missEmpty) != 0 {
		t.Fatalf("reads: recent %v, mongodb %v; want the answer from Redis", reads("recent", ""), reads("mongodb", missEmpty))
	}

	// Stored messages whose buffer and watermark are gone are read from MongoDB.
	f.newSession(t, "old", "agent-1")
	if err := f.svc.HandleBatch(ctx, batch(t, in{"old", "c1", "one"}, in{"old", "c2", "two"})); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.Del(ctx, recentKey("old"), storedKey("old")).Err(); err != nil {
		t.Fatal(err)
	}
	if msgs, _, err := f.svc.ListMessages(ctx, "old", 0, 50); err != nil || len(msgs) != 2 {
		t.Fatalf("buffer and watermark expired: %v err=%v, want both messages from MongoDB", msgs, err)
	}
	// So are they when only the buffer is gone (erasure drops it) and the watermark is
	// past the reader.
	if err := f.svc.HandleBatch(ctx, batch(t, in{"old", "c3", "three"})); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.Del(ctx, recentKey("old")).Err(); err != nil {
		t.Fatal(err)
	}
	if msgs, _, err := f.svc.ListMessages(ctx, "old", 1, 50); err != nil || len(msgs) != 2 || msgs[0].Seq != 2 {
		t.Fatalf("buffer dropped, watermark 3: %v err=%v, want seqs 2 and 3 from MongoDB", msgs, err)
	}
	if got := reads("mongodb", missEmpty); got != 2 {
		t.Fatalf("MongoDB reads for an empty buffer: %v, want 2", got)
	}
}

// A resend of a message already stored is answered from Redis alone, and one repeated
// within a batch is inserted once; a repeat that was sequenced but never stored (a
// crash between the two) is still inserted.
func TestRepeatsBelowTheStoredWatermarkAreNotInsertedAgain(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.newSession(t, "s1", "a1")
	var inserted []string
	insert := f.svc.inserts.Write
	f.svc.inserts.Write = func(ctx context.Context, msgs []Message) (map[int]bool, error) {
		for _, m := range msgs {
			inserted = append(inserted, m.ClientMsgID)
		}
		return insert(ctx, msgs)
	}
	if err := f.svc.HandleBatch(ctx, batch(t, in{"s1", "a", "1"}, in{"s1", "b", "2"})); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.HandleBatch(ctx, batch(t, in{"s1", "b", "2"}, in{"s1", "c", "3"}, in{"s1", "c", "3"})); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.HandleBatch(ctx, batch(t, in{"s1", "a", "1"})); err != nil { // repeats only
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(inserted), "[a b c]"; got != want {
		t.Errorf("inserted %s, want %s: repeats went to MongoDB again", got, want)
	}

	// d was sequenced (seq 4) but the process died before storing it.
	if err := f.rdb.HSet(ctx, idsKey("s1"), "d", 4).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.HSet(ctx, stateKey("s1"), "seq", 4).Err(); err != nil {
		t.Fatal(err)
	}
	inserted = nil
	if err := f.svc.HandleBatch(ctx, batch(t, in{"s1", "d", "4"}, in{"s1", "e", "5"})); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(inserted), "[d e]"; got != want {
		t.Errorf("inserted %s, want %s", got, want)
	}
	if got, want := seqsAndIDs(f.stored(t, "s1")), "1:a 2:b 3:c 4:d 5:e "; got != want {
		t.Fatalf("stored %q, want %q", got, want)
	}
	// The watermark goes with the rest of the state.
	if err := f.svc.state.drop(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if n, err := f.rdb.Exists(ctx, storedKey("s1")).Result(); err != nil || n != 0 {
		t.Errorf("stored watermark survives a drop (exists=%d, %v)", n, err)
	}
}
