package routing

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/services/routing/internal/dispatch"
	"github.com/helmdesk/helmdesk/services/routing/internal/rules"
)

// TestConcurrentAssignAcrossReplicas sends 200 sessions at once to 10 online agents
// of capacity 5 through two replicas sharing Redis and MongoDB, then releases
// sessions and checks that the queue drains in priority order, each waiting session
// going to exactly one agent and no agent ever holding more than 5.
func TestConcurrentAssignAcrossReplicas(t *testing.T) {
	t.Parallel()
	const (
		agents   = 10
		capacity = 5
		sessions = 200
	)
	e := newEnv(t)
	replicas := []*Service{e.replica(Config{}), e.replica(Config{})}
	for i := range agents {
		id := fmt.Sprintf("agent-%02d", i)
		if _, err := replicas[0].upsertAgent(ctx, agentProfile{AgentID: id, MaxSessions: capacity}); err != nil {
			t.Fatal(err)
		}
		if _, err := replicas[1].setAgentStatus(ctx, id, dispatch.Online); err != nil {
			t.Fatal(err)
		}
	}
	priority := map[string]int{}
	for i := range sessions {
		priority[fmt.Sprintf("s%03d", i)] = (i % 4) * 10
	}

	// Everyone arrives at once.
	results := make([]assignment, sessions)
	errs := make([]error, sessions)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range sessions {
		wg.Go(func() {
			<-start
			sid := fmt.Sprintf("s%03d", i)
			results[i], errs[i] = replicas[i%2].assign(ctx, assignInput{SessionID: sid, Input: rules.Input{Priority: priority[sid]}})
		})
	}
	close(start)
	wg.Wait()

	holder := map[string]string{} // session → agent
	perAgent := map[string]int{}
	queued := map[string]bool{}
	for i, r := range results {
		sid := fmt.Sprintf("s%03d", i)
		if errs[i] != nil {
			t.Fatalf("assign %s: %v", sid, errs[i])
		}
		if r.Assigned {
			holder[sid] = r.AgentID
			perAgent[r.AgentID]++
		} else {
			queued[sid] = true
			if r.Position < 1 || r.Position > sessions {
				t.Errorf("%s queued at position %d", sid, r.Position)
			}
		}
	}
	if len(holder) != agents*capacity || len(queued) != sessions-agents*capacity {
		t.Fatalf("assigned %d, queued %d; want %d and %d", len(holder), len(queued), agents*capacity, sessions-agents*capacity)
	}
	checkLoads := func(when string) {
		t.Helper()
		all, err := replicas[0].listAgents(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range all {
			if a.Load > capacity || a.Load != perAgent[a.ID] {
				t.Errorf("%s: %s holds %d sessions (expected %d, capacity %d)", when, a.ID, a.Load, perAgent[a.ID], capacity)
			}
		}
	}
	checkLoads("after the burst")
	for id, n := range perAgent {
		if n != capacity {
			t.Errorf("%s got %d sessions, want %d", id, n, capacity)
		}
	}
	qs, err := replicas[1].queues(ctx)
	if err != nil || len(qs) != 1 || qs[0].Length != int64(len(queued)) {
		t.Fatalf("queues = %v, %v", qs, err)
	}

	events := e.routedEvents()
	routedSeen := map[string]bool{}
	// applyRouted records a round of routed sessions and checks it took the best
	// waiting sessions: none left waiting has a higher priority than one routed.
	applyRouted := func(round string, n int, ordered bool) {
		t.Helper()
		evs := events.next(n)
		minRouted := 1000
		for i, ev := range evs {
			sid, agent := ev.GetSessionId(), ev.GetAgentId()
			if !queued[sid] {
				t.Fatalf("%s: %s routed but was not waiting (routed before: %v)", round, sid, routedSeen[sid])
			}
			if ordered && i > 0 && priority[sid] > priority[evs[i-1].GetSessionId()] {
				t.Errorf("%s: %s (priority %d) routed after %s (priority %d)", round, sid, priority[sid], evs[i-1].GetSessionId(), priority[evs[i-1].GetSessionId()])
			}
			delete(queued, sid)
			routedSeen[sid] = true
			holder[sid] = agent
			perAgent[agent]++
			minRouted = min(minRouted, priority[sid])
		}
		for sid := range queued {
			if priority[sid] > minRouted {
				t.Errorf("%s: %s (priority %d) still waits while one of priority %d was routed", round, sid, priority[sid], minRouted)
			}
		}
	}
	release := func(sid string, r *Service) {
		t.Helper()
		agent := holder[sid]
		ok, err := r.release(ctx, sid, agent)
		if err != nil || !ok {
			t.Fatalf("release %s from %s: %v, %v", sid, agent, ok, err)
		}
		delete(holder, sid)
		perAgent[agent]--
	}

	// Releases one at a time, alternating replicas: strict priority order.
	first := make([]string, 0, len(holder))
	for sid := range holder {
		first = append(first, sid)
	}
	for k, sid := range first {
		release(sid, replicas[k%2])
	}
	applyRouted("one by one", len(first), true)
	checkLoads("after sequential releases")

	// Then concurrent releases on both replicas until the queue is empty.
	for round := 1; len(queued) > 0; round++ {
		batch := make([]string, 0, len(holder))
		for sid := range holder {
			batch = append(batch, sid)
		}
		want := min(len(batch), len(queued))
		var mu sync.Mutex
		var wg sync.WaitGroup
		for k, sid := range batch {
			wg.Go(func() {
				mu.Lock()
				agent := holder[sid]
				mu.Unlock()
				ok, err := replicas[k%2].release(ctx, sid, agent)
				if err != nil || !ok {
					t.Errorf("release %s: %v, %v", sid, ok, err)
				}
				mu.Lock()
				delete(holder, sid)
				perAgent[agent]--
				mu.Unlock()
			})
		}
		wg.Wait()
		applyRouted(fmt.Sprintf("concurrent round %d", round), want, false)
		checkLoads(fmt.Sprintf("after concurrent round %d", round))
	}
	if len(routedSeen) != sessions-agents*capacity {
		t.Errorf("%d sessions routed from the queue, want %d", len(routedSeen), sessions-agents*capacity)
	}
	events.none(200 * time.Millisecond)

	// Metrics, summed over the replicas.
	var assigned, queuedN, fromQueue, waits float64
	for _, r := range replicas {
		families, _ := r.deps.Runtime.Metrics.Registry.Gather()
		for _, f := range families {
			if f.GetName() != "helmdesk_routing_assignments_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				switch m.GetLabel()[0].GetValue() {
				case "assigned":
					assigned += m.GetCounter().GetValue()
				case "queued":
					queuedN += m.GetCounter().GetValue()
				case "routed_from_queue":
					fromQueue += m.GetCounter().GetValue()
				}
			}
		}
		waits += metricValue(t, r, "helmdesk_routing_queue_wait_seconds")
		if n := metricValue(t, r, "helmdesk_routing_assign_duration_seconds"); n < 50 {
			t.Errorf("assign latency observations = %v", n)
		}
	}
	if assigned != 50 || queuedN != 150 || fromQueue != 150 || waits != 150 {
		t.Errorf("metrics: assigned %v queued %v routed_from_queue %v waits %v", assigned, queuedN, fromQueue, waits)
	}
	replicas[0].sweep(ctx)
	if v := metricValue(t, replicas[0], "helmdesk_routing_agents_online"); v != agents {
		t.Errorf("agents online gauge = %v", v)
	}
}
