package routing

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/config"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
)

// A replica that claimed a waiting session but died before publishing leaves it in
// the outbox; once the lease ends another replica's sweep publishes it.
func TestOutboxRedelivery(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{OutboxLease: 10 * time.Second})
	f.agent(t, "a1", 1, online)
	f.assign(t, &routingv1.AssignRequest{SessionId: "s1"})
	if r := f.assign(t, &routingv1.AssignRequest{SessionId: "s2"}); r.GetAssigned() {
		t.Fatal(r)
	}
	// "Crash": free the agent and drain on the board directly, without publishing.
	if _, err := f.s.board.Release(ctx, "s1", "a1"); err != nil {
		t.Fatal(err)
	}
	routed, err := f.s.board.Drain(ctx, nil, f.clock.Now(), 10, f.s.cfg.OutboxLease)
	if err != nil || len(routed) != 1 || routed[0].SessionID != "s2" {
		t.Fatalf("drain = %v, %v", routed, err)
	}
	events := f.routedEvents()
	other := f.replica(Config{OutboxLease: 10 * time.Second})
	other.sweep(ctx) // the lease still runs
	events.none(100 * time.Millisecond)
	f.clock.Advance(11 * time.Second)
	other.sweep(ctx)
	if ev := events.next(1)[0]; ev.GetSessionId() != "s2" || ev.GetAgentId() != "a1" {
		t.Errorf("republished %v", ev)
	}
	f.clock.Advance(time.Minute)
	other.sweep(ctx)
	events.none(100 * time.Millisecond)
}

// Redis loses everything (a restart without persistence): profiles come back from
// MongoDB on demand and the rules version in force is restored.
func TestRedisLoss(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.groups(t, "premium")
	f.agent(t, "p1", 4, online, "premium")
	f.putRules(t, "user_level == 'VIP'", "assign_to_group('premium')")
	if err := f.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	st := f.state(t, "p1")
	if st.GetStatus() != offline || st.GetMaxSessions() != 4 || len(st.GetGroups()) != 1 {
		t.Errorf("restored profile = %v", st)
	}
	must[*routingv1.SetAgentStatusResponse](t)(f.c.SetAgentStatus(ctx, &routingv1.SetAgentStatusRequest{AgentId: "p1", Status: online}))
	r := f.assign(t, &routingv1.AssignRequest{SessionId: "s1", Profile: profileOf(t, map[string]any{"user_level": "VIP"})})
	if !r.GetAssigned() || r.GetGroup() != "premium" || r.GetRulesVersion() != 1 {
		t.Errorf("assign after the loss = %v", r)
	}
	// SetAgentStatus on an agent Redis does not know restores it too.
	if err := f.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if res := must[*routingv1.SetAgentStatusResponse](t)(f.c.SetAgentStatus(ctx, &routingv1.SetAgentStatusRequest{AgentId: "p1", Status: online})); res.GetState().GetStatus() != online {
		t.Errorf("status after the second loss = %v", res)
	}
	// So does a console connection.
	if err := f.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	must[*routingv1.AgentConnectedResponse](t)(f.c.AgentConnected(ctx, &routingv1.AgentConnectedRequest{AgentId: "p1", ConnectionId: "c1"}))
}

func TestRunStopsWithContext(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{SweepInterval: 10 * time.Millisecond})
	c, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.s.Run(c) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	parse := func(env map[string]string, args ...string) (Config, error) {
		var c Config
		s := config.NewSet("test")
		c.Declare(s)
		_, err := s.Parse(args, func(k string) string { return env[k] })
		return c, err
	}
	c, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{RedisPrefix: "helmdesk:{routing}:", PresenceGrace: 30 * time.Second, ConnectionTTL: time.Minute, TimeZone: "UTC",
		SweepInterval: time.Second, OutboxLease: 15 * time.Second}
	if c != want {
		t.Errorf("defaults = %+v, want %+v", c, want)
	}
	c, err = parse(map[string]string{"HELMDESK_ROUTING_QUEUE_OVERFLOW_AFTER": "5m", "HELMDESK_ROUTING_QUEUE_OVERFLOW_GROUP": "default_group",
		"HELMDESK_ROUTING_TIMEZONE": "Asia/Shanghai", "HELMDESK_ROUTING_PRESENCE_GRACE": "0s"})
	if err != nil || c.QueueOverflowAfter != 5*time.Minute || c.QueueOverflowGroup != "default_group" || c.TimeZone != "Asia/Shanghai" || c.PresenceGrace != 0 {
		t.Errorf("from env: %+v, %v", c, err)
	}
	for _, bad := range []map[string]string{
		{"HELMDESK_ROUTING_REDIS_PREFIX": "no-hash-tag:"},
		{"HELMDESK_ROUTING_REDIS_PREFIX": "empty-{}-tag:"},
		{"HELMDESK_ROUTING_QUEUE_OVERFLOW_GROUP": "Not A Group"},
		{"HELMDESK_ROUTING_QUEUE_OVERFLOW_AFTER": "-1s"},
		{"HELMDESK_ROUTING_TIMEZONE": "Mars/Olympus"},
		{"HELMDESK_ROUTING_CONNECTION_TTL": "0s"},
		{"HELMDESK_ROUTING_SWEEP_INTERVAL": "1ms"},
		{"HELMDESK_ROUTING_OUTBOX_LEASE": "10ms"},
	} {
		if _, err := parse(bad); err == nil {
			t.Errorf("%v accepted", bad)
		} else if !strings.Contains(err.Error(), "--routing-") {
			t.Errorf("%v: error %q does not name the flag", bad, err)
		}
	}
}
