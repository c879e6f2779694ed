package load

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/loadtest/internal/target"
	"github.com/helmdesk/helmdesk/pkg/client"
)

func TestConfigComplete(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		err  string // substring; "" means valid
	}{
		{name: "defaults against a loopback target", cfg: Config{Target: "http://127.0.0.1:8080"}},
		{name: "localhost", cfg: Config{Target: "http://localhost:8080"}},
		{name: "started dev with chaos", cfg: Config{Layout: target.Dev, Chaos: []string{"dev"}}},
		{name: "started split with chaos", cfg: Config{Layout: target.Split, Chaos: []string{"session", "gateway"}}},
		{
			// The tool must never aim at another machine.
			name: "remote target refused",
			cfg:  Config{Target: "http://10.1.2.3:8080"},
			err:  "only targets loopback",
		},
		{name: "no target", cfg: Config{}, err: "give -target"},
		{name: "chaos without layout", cfg: Config{Target: "http://127.0.0.1:1", Chaos: []string{"gateway"}}, err: "-chaos needs -layout"},
		{name: "chaos on a process the layout lacks", cfg: Config{Layout: target.Dev, Chaos: []string{"gateway"}}, err: "the dev layout has"},
		{name: "unknown layout", cfg: Config{Layout: "k8s"}, err: "-layout must be dev or split"},
		{
			// An agent takes at most 100 sessions.
			name: "too few agents",
			cfg:  Config{Target: "http://127.0.0.1:1", Customers: 1001, Agents: 10},
			err:  "need at least 11 agents",
		},
		{name: "bad jitter", cfg: Config{Target: "http://127.0.0.1:1", Jitter: 2}, err: "-jitter"},
		{name: "unbounded", cfg: Config{Target: "http://127.0.0.1:1", Duration: 48 * time.Hour}, err: "at most 24h"},
		{name: "bad setup mode", cfg: Config{Target: "http://127.0.0.1:1", Setup: "maybe"}, err: "-setup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Complete()
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("Complete() = %v, want valid", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("Complete() = %v, want an error containing %q", err, tt.err)
			}
		})
	}
}

func TestAgentCapacity(t *testing.T) {
	for _, tt := range []struct{ customers, agents, want int }{
		{100, 10, 10}, {101, 10, 11}, {5, 10, 1}, {5000, 50, 100}, {500, 50, 10},
	} {
		c := Config{Customers: tt.customers, Agents: tt.agents}
		if got := c.agentCapacity(); got != tt.want {
			t.Errorf("capacity(%d customers, %d agents) = %d, want %d", tt.customers, tt.agents, got, tt.want)
		}
	}
}

func TestQueue(t *testing.T) {
	q := newQueue()
	const n = 10000
	var wg sync.WaitGroup
	got := make(chan int, n)
	for range 4 {
		wg.Go(func() {
			for {
				j, ok := q.pop()
				if !ok {
					return
				}
				got <- int(j.lastSeq)
			}
		})
	}
	for i := range n {
		q.push(job{kind: jobResume, lastSeq: int64(i)})
	}
	for q.len() > 0 {
		time.Sleep(time.Millisecond)
	}
	q.close()
	wg.Wait()
	close(got)
	seen := map[int]bool{}
	for v := range got {
		seen[v] = true
	}
	if len(seen) != n {
		t.Fatalf("popped %d distinct jobs, want %d", len(seen), n)
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop after close returned a job")
	}
}

func TestBackoff(t *testing.T) {
	var b backoff
	for i := range quickAttempts + 3 {
		d := b.next()
		if d < 50*time.Millisecond || d > slowCap {
			t.Fatalf("attempt %d: %v outside 100ms..10s, 50-100%%", i, d)
		}
		if i < quickAttempts && d > quickCap {
			t.Fatalf("attempt %d: %v over the quick cap %v", i, d, quickCap)
		}
		if i > 3 && i < quickAttempts && d < quickCap/2 {
			t.Fatalf("attempt %d: %v, want the quick cap (50-100%%)", i, d)
		}
		if i == quickAttempts+2 && d < 2*quickCap {
			t.Fatalf("attempt %d: %v, want slower retries after the quick phase", i, d)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Fatalf("after reset: %v", d)
	}
}

// TestScheduler checks the pacing of the shared scheduler and its message budget.
func TestScheduler(t *testing.T) {
	newRunner := func() *runner {
		return &runner{cfg: Config{TextBytes: 32}, m: newMetrics(), q: newQueue(), pad: strings.Repeat("x", 32)}
	}
	live := func(n int) []*conv {
		var cs []*conv
		for i := range n {
			c := newConv("s" + itoa(i))
			c.live = true
			cs = append(cs, c)
		}
		return cs
	}

	t.Run("rate", func(t *testing.T) {
		r := newRunner()
		s := &scheduler{r: r, add: make(chan *conv, 10), interval: 50 * time.Millisecond, jitter: 0.5}
		for _, c := range live(10) {
			s.add <- c
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if why := s.run(ctx, 0); why != "duration" {
			t.Fatalf("stopped by %q", why)
		}
		// 10 customers × 20 msg/s × 1 s.
		if n := r.m.created[customer].Load(); n < 150 || n > 230 {
			t.Fatalf("created %d messages in 1s, want about 200", n)
		}
		if r.q.len() != int(r.m.created[customer].Load()) {
			t.Fatalf("queued %d of %d", r.q.len(), r.m.created[customer].Load())
		}
	})

	t.Run("budget", func(t *testing.T) {
		r := newRunner()
		s := &scheduler{r: r, add: make(chan *conv, 10), interval: 10 * time.Millisecond}
		for _, c := range live(10) {
			s.add <- c
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if why := s.run(ctx, 25); why != "messages" {
			t.Fatalf("stopped by %q", why)
		}
		if n := r.m.created[customer].Load(); n != 25 {
			t.Fatalf("created %d, want the budget of 25", n)
		}
	})

	t.Run("skips customers that are not connected", func(t *testing.T) {
		r := newRunner()
		s := &scheduler{r: r, add: make(chan *conv, 1), interval: 10 * time.Millisecond}
		c := newConv("down")
		s.add <- c
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		s.run(ctx, 0)
		if n := r.m.created[customer].Load(); n != 0 {
			t.Fatalf("created %d messages for a disconnected customer", n)
		}
	})
}

// A reconnected agent follows the sessions its greeting names that it did not know
// (assigned while it was away) with a resume, as the console does; sessions it knew are
// resumed by the reconnect itself, and new assignments on a first connection are
// replayed by the gateway unasked.
func TestAgentResumesSessionsLearnedFromAGreeting(t *testing.T) {
	r := &runner{q: newQueue(), convs: map[string]*conv{}}
	sock := &client.Socket{}
	a := &agent{id: "a1", convs: map[string]*conv{}, sock: sock, conn: 1}
	assigned := func(sid string) client.Frame {
		return client.Frame{Type: "session", SessionID: sid, AgentID: "a1", Status: "assigned"}
	}
	r.onAgentSession(a, sock, assigned("s1"))
	if n := r.q.len(); n != 0 {
		t.Fatalf("first connection: %d jobs queued, want none (the gateway replays new assignments)", n)
	}
	a.conn = 2 // reconnected
	r.onAgentSession(a, sock, assigned("s1"))
	r.convFor("s2").sides[agentS].lastSeq = 3
	r.onAgentSession(a, sock, assigned("s2"))
	r.onAgentSession(a, sock, assigned("s2"))
	if n := r.q.len(); n != 1 {
		t.Fatalf("%d jobs queued, want one resume (for s2 only)", n)
	}
	j, _ := r.q.pop()
	if j.kind != jobResume || j.c.sid != "s2" || j.lastSeq != 3 || j.sock != sock || j.from != agentS {
		t.Errorf("queued %+v, want a resume of s2 after seq 3 on the agent's socket", j)
	}
	// A session taken away is forgotten.
	r.onAgentSession(a, sock, client.Frame{Type: "session", SessionID: "s2", AgentID: "a2", Status: "assigned"})
	if _, ok := a.convs["s2"]; ok {
		t.Error("s2 is still the agent's after it was transferred away")
	}
}

// A restart's readiness answer can come long after the restarted gateway served its
// first reconnect; resume times then count from that first reconnect.
func TestReadyIsTheFirstReconnectServedWhenEarlier(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	events := toEvents([]targetChaos{
		{Process: "gateway", KilledAt: at(0), ReadyAt: at(3000)},
		{Process: "session", KilledAt: at(10000), ReadyAt: at(12000)},
	})
	eps := []*episode{
		{droppedAt: at(5), connectedAt: at(1200)},      // served before the answer
		{droppedAt: at(5), connectedAt: at(900)},       // the first one served
		{droppedAt: at(-50), connectedAt: at(100)},     // dropped before the kill: not this restart's
		{droppedAt: at(10500), connectedAt: at(11000)}, // the session service holds no sockets
	}
	servedBeforeReady(events, eps)
	if !events[0].ready.Equal(at(900)) || !events[0].readyz.Equal(at(3000)) {
		t.Errorf("gateway ready at %v (readyz %v), want 900ms (readyz 3s)", events[0].ready.Sub(t0), events[0].readyz.Sub(t0))
	}
	if !events[0].until.Equal(at(4000)) {
		t.Errorf("attribution window ends at %v, want 4s: it follows the readiness answer", events[0].until.Sub(t0))
	}
	if !events[1].ready.Equal(at(12000)) {
		t.Errorf("session ready moved to %v, want 12s", events[1].ready.Sub(t0))
	}
}

// The after-chaos summary times each client from readiness and splits its time into
// the wait before its dial, the dial, and the resume.
func TestAfterChaosSplitsTheTimeOfEachClient(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	events := toEvents([]targetChaos{{Process: "gateway", KilledAt: at(0), ReadyAt: at(1000)}})
	eps := []*episode{
		// Dialled before ready, connected 1.5 s later, resumed 0.1 s after that.
		{droppedAt: at(1), dialedAt: at(900), connectedAt: at(2400), resumedAt: at(2500)},
		// Dialled 0.6 s after ready: resumed 2.3 s after ready, too late.
		{droppedAt: at(2), dialedAt: at(1600), connectedAt: at(3200), resumedAt: at(3300)},
		{droppedAt: at(3), dialedAt: at(1100), connectedAt: at(1150)},                  // never resumed
		{droppedAt: at(-10), dialedAt: at(50), connectedAt: at(60), resumedAt: at(70)}, // not this restart's
	}
	servedBeforeReady(events, eps)
	got := afterChaos(events, eps)
	if got.Clients != 3 || got.Within2s != 1 || got.SlowestMS != 2300 {
		t.Fatalf("clients %d, within 2s %d, slowest %vms; want 3, 1, 2300", got.Clients, got.Within2s, got.SlowestMS)
	}
	if got.Dial.Count != 2 || got.Arrival.Min != 0 || got.Arrival.Max != 600 || got.Dial.Max != 1600 || got.Resume.Max != 100 {
		t.Fatalf("arrival %+v, dial %+v, resume %+v", got.Arrival, got.Dial, got.Resume)
	}
}
