package routing

import (
	"slices"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/fault"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
)

func TestPresence(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{PresenceGrace: 30 * time.Second, ConnectionTTL: 60 * time.Second})
	f.agent(t, "a1", 5, online)
	sweep := func() { t.Helper(); f.s.sweep(ctx) }
	status := func() routingv1.AgentStatus { t.Helper(); return f.state(t, "a1").GetStatus() }
	connect := func(conn string) *routingv1.AgentState {
		t.Helper()
		return must[*routingv1.AgentConnectedResponse](t)(f.c.AgentConnected(ctx, &routingv1.AgentConnectedRequest{AgentId: "a1", ConnectionId: conn})).GetState()
	}
	disconnect := func(conn string) {
		t.Helper()
		must[*routingv1.AgentDisconnectedResponse](t)(f.c.AgentDisconnected(ctx, &routingv1.AgentDisconnectedRequest{AgentId: "a1", ConnectionId: conn}))
	}

	if st := connect("tab1"); st.GetConnections() != 1 || st.GetStatus() != online {
		t.Fatalf("after connect: %v", st)
	}
	if st := connect("tab2"); st.GetConnections() != 2 {
		t.Fatalf("after second connect: %v", st)
	}
	r := f.assign(t, &routingv1.AssignRequest{SessionId: "s1"})
	if r.GetAgentId() != "a1" {
		t.Fatal(r)
	}

	// One socket closes: the other keeps the agent online.
	disconnect("tab1")
	f.clock.Advance(31 * time.Second)
	sweep()
	if status() != online {
		t.Fatal("agent with an open socket went away")
	}
	// The last socket closes; within the grace period nothing changes.
	disconnect("tab2")
	if n := f.state(t, "a1").GetConnections(); n != 0 {
		t.Errorf("connections after both closed = %d", n)
	}
	f.clock.Advance(29 * time.Second)
	sweep()
	if status() != online {
		t.Fatal("agent went away before the grace period ended")
	}
	// After the grace period the agent is away, and keeps the assigned session.
	f.clock.Advance(2 * time.Second)
	sweep()
	st := f.state(t, "a1")
	if st.GetStatus() != away || st.GetCurrentSessionCount() != 1 {
		t.Fatalf("after grace: %v, want away holding 1 session", st)
	}
	// Away agents get no new sessions.
	if r := f.assign(t, &routingv1.AssignRequest{SessionId: "s2"}); r.GetAssigned() {
		t.Fatalf("away agent got a session: %v", r)
	}
	// Reconnecting makes the agent online again, and the queue moves.
	events := f.routedEvents()
	if st := connect("tab3"); st.GetStatus() != online {
		t.Fatalf("after reconnect: %v", st)
	}
	if ev := events.next(1)[0]; ev.GetSessionId() != "s2" || ev.GetAgentId() != "a1" {
		t.Errorf("routed %v", ev)
	}

	// A socket whose heartbeats stop expires after the TTL, then the grace applies.
	f.clock.Advance(50 * time.Second)
	connect("tab3") // heartbeat: live until +60 s from now
	f.clock.Advance(89 * time.Second)
	sweep()
	if status() != online {
		t.Fatal("agent went away within TTL + grace")
	}
	f.clock.Advance(62 * time.Second)
	sweep()
	if status() != away {
		t.Fatalf("agent whose heartbeats stopped is %v, want away", status())
	}

	// An agent who chose away is not brought back by a connection.
	must[*routingv1.SetAgentStatusResponse](t)(f.c.SetAgentStatus(ctx, &routingv1.SetAgentStatusRequest{AgentId: "a1", Status: away}))
	if st := connect("tab4"); st.GetStatus() != away {
		t.Errorf("manual away changed by connect: %v", st)
	}
	// Neither is an offline agent made away or online by sockets.
	must[*routingv1.SetAgentStatusResponse](t)(f.c.SetAgentStatus(ctx, &routingv1.SetAgentStatusRequest{AgentId: "a1", Status: offline}))
	disconnect("tab4")
	f.clock.Advance(time.Minute)
	sweep()
	if status() != offline {
		t.Errorf("offline agent became %v", status())
	}
}

func TestOfflineReleasesAndRequeues(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.groups(t, "tech")
	f.agent(t, "t1", 2, online, "tech")
	f.agent(t, "t2", 2, away, "tech")
	f.putRules(t, "true", "assign_to_group('tech')")
	for _, id := range []string{"s1", "s2"} {
		if r := f.assign(t, &routingv1.AssignRequest{SessionId: id}); r.GetAgentId() != "t1" {
			t.Fatal(r)
		}
	}
	if r := f.assign(t, &routingv1.AssignRequest{SessionId: "s3", Priority: 100}); r.GetAssigned() {
		t.Fatal(r)
	}
	res := must[*routingv1.SetAgentStatusResponse](t)(f.c.SetAgentStatus(ctx, &routingv1.SetAgentStatusRequest{AgentId: "t1", Status: offline}))
	released := slices.Sorted(slices.Values(res.GetReleasedSessionIds()))
	if !slices.Equal(released, []string{"s1", "s2"}) || res.GetState().GetCurrentSessionCount() != 0 || res.GetState().GetStatus() != offline {
		t.Fatalf("offline: %v", res)
	}
	// The released sessions wait first in line (they were being served), even before s3
	// of priority 100.
	q := must[*routingv1.ListQueuesResponse](t)(f.c.ListQueues(ctx, &routingv1.ListQueuesRequest{}))
	if len(q.GetQueues()) != 1 || q.GetQueues()[0].GetGroup() != "tech" || q.GetQueues()[0].GetLength() != 3 {
		t.Fatalf("queues: %v", q)
	}
	if p := must[*routingv1.GetQueuePositionResponse](t)(f.c.GetQueuePosition(ctx, &routingv1.GetQueuePositionRequest{SessionId: "s3"})); p.GetQueuePosition() != 3 {
		t.Errorf("s3 at %d, want 3", p.GetQueuePosition())
	}
	// Releasing a released session is a no-op; Assign (the session service re-routing
	// it) returns its current place.
	if rel := must[*routingv1.ReleaseResponse](t)(f.c.Release(ctx, &routingv1.ReleaseRequest{SessionId: "s1", AgentId: "t1"})); rel.GetReleased() {
		t.Error("released twice")
	}
	if r := f.assign(t, &routingv1.AssignRequest{SessionId: "s1"}); r.GetAssigned() || r.GetGroup() != "tech" {
		t.Errorf("re-Assign of s1 = %v", r)
	}
	// Another agent comes online and takes them over.
	events := f.routedEvents()
	must[*routingv1.SetAgentStatusResponse](t)(f.c.SetAgentStatus(ctx, &routingv1.SetAgentStatusRequest{AgentId: "t2", Status: online}))
	got := events.next(2)
	ids := []string{got[0].GetSessionId(), got[1].GetSessionId()}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"s1", "s2"}) || got[0].GetAgentId() != "t2" {
		t.Errorf("taken over: %v", got)
	}
}

func TestQueueOperations(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{QueueOverflowAfter: 2 * time.Minute, QueueOverflowGroup: "overflow"})
	f.groups(t, "tech", "overflow")
	f.putRules(t, "true", "assign_to_group('tech')")
	for i, id := range []string{"s1", "s2", "s3"} {
		r := f.assign(t, &routingv1.AssignRequest{SessionId: id})
		if r.GetAssigned() || r.GetQueuePosition() != int64(i+1) || r.GetGroup() != "tech" {
			t.Fatalf("%s = %v", id, r)
		}
		f.clock.Advance(time.Minute)
	}
	p := must[*routingv1.GetQueuePositionResponse](t)(f.c.GetQueuePosition(ctx, &routingv1.GetQueuePositionRequest{SessionId: "s2"}))
	if !p.GetQueued() || p.GetQueuePosition() != 2 || p.GetQueueLength() != 3 || p.GetGroup() != "tech" || !p.GetEnqueuedAt().AsTime().Equal(time.Date(2026, 11, 20, 10, 1, 0, 0, time.UTC)) {
		t.Errorf("position of s2 = %v", p)
	}
	// The customer of s2 leaves.
	if r := must[*routingv1.RemoveFromQueueResponse](t)(f.c.RemoveFromQueue(ctx, &routingv1.RemoveFromQueueRequest{SessionId: "s2"})); !r.GetRemoved() {
		t.Error("s2 not removed")
	}
	if r := must[*routingv1.RemoveFromQueueResponse](t)(f.c.RemoveFromQueue(ctx, &routingv1.RemoveFromQueueRequest{SessionId: "s2"})); r.GetRemoved() {
		t.Error("s2 removed twice")
	}
	_, err := f.c.GetQueuePosition(ctx, &routingv1.GetQueuePositionRequest{SessionId: "s2"})
	wantFault(t, err, fault.NotFound, "session_not_routed")
	if p := must[*routingv1.GetQueuePositionResponse](t)(f.c.GetQueuePosition(ctx, &routingv1.GetQueuePositionRequest{SessionId: "s3"})); p.GetQueuePosition() != 2 {
		t.Errorf("s3 at %d after s2 left", p.GetQueuePosition())
	}
	// Release with no agent also takes a waiting session out.
	f.assign(t, &routingv1.AssignRequest{SessionId: "s4"})
	if r := must[*routingv1.ReleaseResponse](t)(f.c.Release(ctx, &routingv1.ReleaseRequest{SessionId: "s4"})); !r.GetReleased() {
		t.Error("Release of a waiting session did nothing")
	}

	// It is now 10:03; s1 waited 3 min, s3 1 min: only s1 overflows.
	f.s.sweep(ctx)
	if p := must[*routingv1.GetQueuePositionResponse](t)(f.c.GetQueuePosition(ctx, &routingv1.GetQueuePositionRequest{SessionId: "s1"})); p.GetGroup() != "overflow" || p.GetQueuePosition() != 1 {
		t.Errorf("s1 after overflow = %v", p)
	}
	queues := must[*routingv1.ListQueuesResponse](t)(f.c.ListQueues(ctx, &routingv1.ListQueuesRequest{})).GetQueues()
	if len(queues) != 2 || queues[0].GetGroup() != "overflow" || queues[0].GetLength() != 1 || queues[1].GetGroup() != "tech" || queues[1].GetLength() != 1 ||
		!queues[0].GetOldestEnqueuedAt().AsTime().Equal(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("queues = %v", queues)
	}
	// Overflowed sessions do not overflow again.
	f.clock.Advance(10 * time.Minute)
	f.s.sweep(ctx)
	if p := must[*routingv1.GetQueuePositionResponse](t)(f.c.GetQueuePosition(ctx, &routingv1.GetQueuePositionRequest{SessionId: "s3"})); p.GetGroup() != "overflow" || p.GetQueuePosition() != 2 {
		t.Errorf("s3 after overflow = %v", p)
	}
	// An agent of the overflow group takes them, s1 first.
	events := f.routedEvents()
	f.agent(t, "o1", 5, online, "overflow")
	got := events.next(2)
	if got[0].GetSessionId() != "s1" || got[1].GetSessionId() != "s3" || got[0].GetGroup() != "overflow" {
		t.Errorf("routed %v", got)
	}
	if n := metricValue(t, f.s, "helmdesk_routing_queue_wait_seconds"); n != 2 {
		t.Errorf("queue wait observations = %v", n)
	}
}

func TestTransfer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.groups(t, "tech", "billing")
	f.agent(t, "t1", 1, online, "tech")
	f.agent(t, "t2", 1, online, "tech")
	f.agent(t, "b1", 1, online, "billing")
	f.putRules(t, "true", "assign_to_group('tech')")
	s1 := f.assign(t, &routingv1.AssignRequest{SessionId: "s1"})
	s2 := f.assign(t, &routingv1.AssignRequest{SessionId: "s2"})
	if s3 := f.assign(t, &routingv1.AssignRequest{SessionId: "s3"}); s3.GetAssigned() {
		t.Fatal(s3)
	}
	// To a full agent: refused, nothing changes.
	_, err := f.c.Transfer(ctx, &routingv1.TransferRequest{SessionId: "s1", ToAgentId: s2.GetAgentId()})
	wantFault(t, err, fault.Conflict, "agent_unavailable")
	// To the agent who already has it: nothing to do.
	if r := must[*routingv1.TransferResponse](t)(f.c.Transfer(ctx, &routingv1.TransferRequest{SessionId: "s1", ToAgentId: s1.GetAgentId()})); !r.GetAssigned() || r.GetAgentId() != s1.GetAgentId() {
		t.Errorf("transfer to the same agent = %v", r)
	}
	// To b1: s1's agent is freed and takes s3 from the queue.
	events := f.routedEvents()
	r := must[*routingv1.TransferResponse](t)(f.c.Transfer(ctx, &routingv1.TransferRequest{SessionId: "s1", ToAgentId: "b1"}))
	if !r.GetAssigned() || r.GetAgentId() != "b1" || r.GetPreviousAgentId() != s1.GetAgentId() {
		t.Errorf("transfer to b1 = %v", r)
	}
	if ev := events.next(1)[0]; ev.GetSessionId() != "s3" || ev.GetAgentId() != s1.GetAgentId() {
		t.Errorf("routed %v", ev)
	}
	// To a group with nobody free: it waits there.
	r = must[*routingv1.TransferResponse](t)(f.c.Transfer(ctx, &routingv1.TransferRequest{SessionId: "s2", ToGroup: "billing", Priority: 5}))
	if r.GetAssigned() || r.GetGroup() != "billing" || r.GetQueuePosition() != 1 || r.GetPreviousAgentId() != s2.GetAgentId() {
		t.Errorf("transfer to billing = %v", r)
	}
	if n := f.state(t, s2.GetAgentId()).GetCurrentSessionCount(); n != 0 {
		t.Errorf("previous agent still holds %d", n)
	}
}
