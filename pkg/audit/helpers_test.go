package audit

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/helmdesk/helmdesk/pkg/crypto"
	"github.com/helmdesk/helmdesk/pkg/testdeps"
)

// testDB returns a fresh database on an embedded FerretDB.
func testDB(t testing.TB) *mongo.Database {
	t.Helper()
	uri, name := testdeps.Mongo(t)
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(20 * time.Second))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database(name)
}

func chainKey(id string, b byte) crypto.Key {
	return crypto.Key{ID: id, Secret: bytes.Repeat([]byte{b}, 32)}
}

// clock is a settable clock shared by the Logs of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// testLog opens a Log on db with chain key a1 unless cfg says otherwise.
func testLog(t testing.TB, db *mongo.Database, cfg Config) *Log {
	t.Helper()
	if cfg.Keys == nil {
		cfg.Keys = []crypto.Key{chainKey("a1", 1)}
	}
	l, err := New(t.Context(), db, cfg)
	if err != nil {
		t.Fatalf("new audit log: %v", err)
	}
	return l
}

// event returns a valid event; change what the test needs.
func event(action string) Event {
	return Event{
		Actor:     Actor{Type: ActorUser, ID: "u1", Name: "Ada", Email: "ada@example.com"},
		Action:    action,
		Target:    Target{Type: "agent", ID: "ag1"},
		SourceIP:  "203.0.113.7",
		UserAgent: "test/1.0",
	}
}

// appendN appends n events and fails the test on error.
func appendN(t testing.TB, l *Log, n int, ev Event) []Entry {
	t.Helper()
	out := make([]Entry, 0, n)
	for range n {
		e, err := l.Append(t.Context(), ev)
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// mustVerify fails the test unless the whole chain verifies.
func mustVerify(t testing.TB, l *Log) Report {
	t.Helper()
	rep, err := l.Verify(t.Context(), 0, 0)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if rep.Break != nil {
		t.Fatalf("verify: %v", rep.Break)
	}
	return rep
}
