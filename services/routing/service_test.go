package routing

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/helmdesk/helmdesk/pkg/fault"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
)

const (
	online  = routingv1.AgentStatus_AGENT_STATUS_ONLINE
	away    = routingv1.AgentStatus_AGENT_STATUS_AWAY
	offline = routingv1.AgentStatus_AGENT_STATUS_OFFLINE
)

var ctx = context.Background()

// wantFault checks that err is a fault of the kind and code.
func wantFault(t *testing.T, err error, kind fault.Kind, code string) *fault.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s/%s", kind, code)
	}
	fe := fault.As(err)
	if fe.Kind != kind || fe.Code != code {
		t.Fatalf("got %s/%s (%v), want %s/%s", fe.Kind, fe.Code, err, kind, code)
	}
	return fe
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// fixture is a client with groups and agents already made.
type fixture struct {
	*env
	s *Service
	c routingv1.RoutingServiceClient
}

func newFixture(t *testing.T, cfg Config) *fixture {
	e := newEnv(t)
	s := e.replica(cfg)
	return &fixture{env: e, s: s, c: e.client(s)}
}

func (f *fixture) groups(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := f.c.CreateGroup(ctx, &routingv1.CreateGroupRequest{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) agent(t *testing.T, id string, maxSessions int, status routingv1.AgentStatus, groups ...string) {
	t.Helper()
	if _, err := f.c.UpsertAgent(ctx, &routingv1.UpsertAgentRequest{AgentId: id, MaxSessions: int32(maxSessions), Groups: groups}); err != nil {
		t.Fatal(err)
	}
	if status != routingv1.AgentStatus_AGENT_STATUS_UNSPECIFIED {
		if _, err := f.c.SetAgentStatus(ctx, &routingv1.SetAgentStatusRequest{AgentId: id, Status: status}); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) state(t *testing.T, id string) *routingv1.AgentState {
	t.Helper()
	res, err := f.c.GetAgentStatus(ctx, &routingv1.GetAgentStatusRequest{AgentId: id})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetState()
}

func (f *fixture) assign(t *testing.T, req *routingv1.AssignRequest) *routingv1.AssignResponse {
	t.Helper()
	res, err := f.c.Assign(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (f *fixture) putRules(t *testing.T, rules ...string) int64 {
	t.Helper()
	req := &routingv1.PutRulesRequest{UpdatedBy: "admin@example.com"}
	for i := 0; i < len(rules); i += 2 {
		req.Rules = append(req.Rules, &routingv1.RoutingRule{Condition: rules[i], Action: rules[i+1]})
	}
	res, err := f.c.PutRules(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return res.GetVersion()
}

func profileOf(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	p, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGroups(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.groups(t, "premium", "default_group", "after-sales_2")
	_, err := f.c.CreateGroup(ctx, &routingv1.CreateGroupRequest{Name: "premium"})
	wantFault(t, err, fault.Conflict, "group_exists")
	for _, bad := range []string{"", "Premium", "has space", "a/b", strings.Repeat("g", 65), "组"} {
		_, err := f.c.CreateGroup(ctx, &routingv1.CreateGroupRequest{Name: bad})
		wantFault(t, err, fault.InvalidArgument, "invalid_group_name")
	}
	res := must[*routingv1.ListGroupsResponse](t)(f.c.ListGroups(ctx, &routingv1.ListGroupsRequest{}))
	var names []string
	for _, g := range res.GetGroups() {
		names = append(names, g.GetName())
		if g.GetCreatedAt() == nil {
			t.Errorf("group %s has no created_at", g.GetName())
		}
	}
	if want := []string{"after-sales_2", "default_group", "premium"}; !slices.Equal(names, want) {
		t.Errorf("ListGroups = %v, want %v", names, want)
	}
}

func TestAgentProfileAndStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.groups(t, "tech", "premium")

	_, err := f.c.UpsertAgent(ctx, &routingv1.UpsertAgentRequest{AgentId: "a1", Groups: []string{"tech", "nope"}})
	fe := wantFault(t, err, fault.InvalidArgument, "unknown_group")
	if !strings.Contains(fe.Message, "nope") {
		t.Errorf("message %q does not name the group", fe.Message)
	}
	_, err = f.c.GetAgentStatus(ctx, &routingv1.GetAgentStatusRequest{AgentId: "a1"})
	wantFault(t, err, fault.NotFound, "agent_not_found")

	// max_sessions 0 means the default, 5; a new agent is offline.
	res := must[*routingv1.UpsertAgentResponse](t)(f.c.UpsertAgent(ctx, &routingv1.UpsertAgentRequest{AgentId: "a1", Groups: []string{"tech", "tech"}}))
	if st := res.GetState(); st.GetMaxSessions() != 5 || st.GetStatus() != offline || !slices.Equal(st.GetGroups(), []string{"tech"}) {
		t.Errorf("new agent state = %v", st)
	}
	st := must[*routingv1.SetAgentStatusResponse](t)(f.c.SetAgentStatus(ctx, &routingv1.SetAgentStatusRequest{AgentId: "a1", Status: online}))
	if st.GetState().GetStatus() != online {
		t.Errorf("status after online = %v", st.GetState().GetStatus())
	}
	got := f.state(t, "a1")
	if got.GetAgentId() != "a1" || got.GetStatus() != online || got.GetCurrentSessionCount() != 0 || got.GetMaxSessions() != 5 {
		t.Errorf("GetAgentStatus = %v", got)
	}
	// Editing the profile keeps presence.
	must[*routingv1.UpsertAgentResponse](t)(f.c.UpsertAgent(ctx, &routingv1.UpsertAgentRequest{AgentId: "a1", MaxSessions: 8, Groups: []string{"premium"}}))
	if got := f.state(t, "a1"); got.GetStatus() != online || got.GetMaxSessions() != 8 || !slices.Equal(got.GetGroups(), []string{"premium"}) {
		t.Errorf("after edit = %v", got)
	}
	f.agent(t, "a2", 3, away, "tech")
	list := must[*routingv1.ListAgentsResponse](t)(f.c.ListAgents(ctx, &routingv1.ListAgentsRequest{}))
	if len(list.GetAgents()) != 2 || list.GetAgents()[1].GetStatus() != away {
		t.Errorf("ListAgents = %v", list.GetAgents())
	}
	list = must[*routingv1.ListAgentsResponse](t)(f.c.ListAgents(ctx, &routingv1.ListAgentsRequest{Group: "tech"}))
	if len(list.GetAgents()) != 1 || list.GetAgents()[0].GetAgentId() != "a2" {
		t.Errorf("ListAgents(tech) = %v", list.GetAgents())
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.agent(t, "a1", 5, online)
	long := strings.Repeat("x", 129)
	cases := []struct {
		name string
		call func() error
		kind fault.Kind
		code string
	}{
		{"Assign empty session", func() error { _, err := f.c.Assign(ctx, &routingv1.AssignRequest{}); return err }, fault.InvalidArgument, "invalid_session_id"},
		{"Assign long session", func() error { _, err := f.c.Assign(ctx, &routingv1.AssignRequest{SessionId: long}); return err }, fault.InvalidArgument, "invalid_session_id"},
		{"Assign session with space", func() error { _, err := f.c.Assign(ctx, &routingv1.AssignRequest{SessionId: "a b"}); return err }, fault.InvalidArgument, "invalid_session_id"},
		{"Assign priority 101", func() error {
			_, err := f.c.Assign(ctx, &routingv1.AssignRequest{SessionId: "s", Priority: 101})
			return err
		}, fault.InvalidArgument, "invalid_priority"},
		{"Assign priority -1", func() error {
			_, err := f.c.Assign(ctx, &routingv1.AssignRequest{SessionId: "s", Priority: -1})
			return err
		}, fault.InvalidArgument, "invalid_priority"},
		{"Assign negative history", func() error {
			_, err := f.c.Assign(ctx, &routingv1.AssignRequest{SessionId: "s", PreviousSessions: -1})
			return err
		}, fault.InvalidArgument, "invalid_previous_sessions"},
		{"Release empty session", func() error { _, err := f.c.Release(ctx, &routingv1.ReleaseRequest{AgentId: "a1"}); return err }, fault.InvalidArgument, "invalid_session_id"},
		{"Release bad agent", func() error {
			_, err := f.c.Release(ctx, &routingv1.ReleaseRequest{SessionId: "s", AgentId: " "})
			return err
		}, fault.InvalidArgument, "invalid_agent_id"},
		{"Transfer empty session", func() error { _, err := f.c.Transfer(ctx, &routingv1.TransferRequest{ToAgentId: "a1"}); return err }, fault.InvalidArgument, "invalid_session_id"},
		{"Transfer no target", func() error { _, err := f.c.Transfer(ctx, &routingv1.TransferRequest{SessionId: "s"}); return err }, fault.InvalidArgument, "invalid_transfer_target"},
		{"Transfer two targets", func() error {
			_, err := f.c.Transfer(ctx, &routingv1.TransferRequest{SessionId: "s", ToAgentId: "a1", ToGroup: "g"})
			return err
		}, fault.InvalidArgument, "invalid_transfer_target"},
		{"Transfer unknown agent", func() error {
			_, err := f.c.Transfer(ctx, &routingv1.TransferRequest{SessionId: "s", ToAgentId: "zz"})
			return err
		}, fault.NotFound, "agent_not_found"},
		{"Transfer unknown group", func() error {
			_, err := f.c.Transfer(ctx, &routingv1.TransferRequest{SessionId: "s", ToGroup: "zz"})
			return err
		}, fault.InvalidArgument, "unknown_group"},
		{"RemoveFromQueue empty", func() error { _, err := f.c.RemoveFromQueue(ctx, &routingv1.RemoveFromQueueRequest{}); return err }, fault.InvalidArgument, "invalid_session_id"},
		{"GetQueuePosition empty", func() error { _, err := f.c.GetQueuePosition(ctx, &routingv1.GetQueuePositionRequest{}); return err }, fault.InvalidArgument, "invalid_session_id"},
		{"GetQueuePosition unknown", func() error {
			_, err := f.c.GetQueuePosition(ctx, &routingv1.GetQueuePositionRequest{SessionId: "nope"})
			return err
		}, fault.NotFound, "session_not_routed"},
		{"UpsertAgent empty id", func() error {
			_, err := f.c.UpsertAgent(ctx, &routingv1.UpsertAgentRequest{MaxSessions: 5})
			return err
		}, fault.InvalidArgument, "invalid_agent_id"},
		{"UpsertAgent max 101", func() error {
			_, err := f.c.UpsertAgent(ctx, &routingv1.UpsertAgentRequest{AgentId: "a9", MaxSessions: 101})
			return err
		}, fault.InvalidArgument, "invalid_max_sessions"},
		{"UpsertAgent max -1", func() error {
			_, err := f.c.UpsertAgent(ctx, &routingv1.UpsertAgentRequest{AgentId: "a9", MaxSessions: -1})
			return err
		}, fault.InvalidArgument, "invalid_max_sessions"},
		{"UpsertAgent bad group", func() error {
			_, err := f.c.UpsertAgent(ctx, &routingv1.UpsertAgentRequest{AgentId: "a9", Groups: []string{"Bad Group"}})
			return err
		}, fault.InvalidArgument, "invalid_group_name"},
		{"ListAgents bad group", func() error { _, err := f.c.ListAgents(ctx, &routingv1.ListAgentsRequest{Group: "Bad"}); return err }, fault.InvalidArgument, "invalid_group_name"},
		{"SetAgentStatus empty id", func() error {
			_, err := f.c.SetAgentStatus(ctx, &routingv1.SetAgentStatusRequest{Status: online})
			return err
		}, fault.InvalidArgument, "invalid_agent_id"},
		{"SetAgentStatus unspecified", func() error {
			_, err := f.c.SetAgentStatus(ctx, &routingv1.SetAgentStatusRequest{AgentId: "a1"})
			return err
		}, fault.InvalidArgument, "invalid_status"},
		{"SetAgentStatus unknown value", func() error {
			_, err := f.c.SetAgentStatus(ctx, &routingv1.SetAgentStatusRequest{AgentId: "a1", Status: 42})
			return err
		}, fault.InvalidArgument, "invalid_status"},
		{"SetAgentStatus unknown agent", func() error {
			_, err := f.c.SetAgentStatus(ctx, &routingv1.SetAgentStatusRequest{AgentId: "nobody", Status: online})
			return err
		}, fault.NotFound, "agent_not_found"},
		{"GetAgentStatus empty", func() error { _, err := f.c.GetAgentStatus(ctx, &routingv1.GetAgentStatusRequest{}); return err }, fault.InvalidArgument, "invalid_agent_id"},
		{"GetAgentStatus unknown", func() error {
			_, err := f.c.GetAgentStatus(ctx, &routingv1.GetAgentStatusRequest{AgentId: "nobody"})
			return err
		}, fault.NotFound, "agent_not_found"},
		{"AgentConnected empty connection", func() error {
			_, err := f.c.AgentConnected(ctx, &routingv1.AgentConnectedRequest{AgentId: "a1"})
			return err
		}, fault.InvalidArgument, "invalid_connection_id"},
		{"AgentConnected unknown agent", func() error {
			_, err := f.c.AgentConnected(ctx, &routingv1.AgentConnectedRequest{AgentId: "nobody", ConnectionId: "c"})
			return err
		}, fault.NotFound, "agent_not_found"},
		{"AgentDisconnected empty agent", func() error {
			_, err := f.c.AgentDisconnected(ctx, &routingv1.AgentDisconnectedRequest{ConnectionId: "c"})
			return err
		}, fault.InvalidArgument, "invalid_agent_id"},
		{"AgentDisconnected unknown agent", func() error {
			_, err := f.c.AgentDisconnected(ctx, &routingv1.AgentDisconnectedRequest{AgentId: "nobody", ConnectionId: "c"})
			return err
		}, fault.NotFound, "agent_not_found"},
		{"CreateGroup empty", func() error { _, err := f.c.CreateGroup(ctx, &routingv1.CreateGroupRequest{}); return err }, fault.InvalidArgument, "invalid_group_name"},
		{"GetRules negative version", func() error { _, err := f.c.GetRules(ctx, &routingv1.GetRulesRequest{Version: -1}); return err }, fault.InvalidArgument, "invalid_version"},
		{"GetRules unknown version", func() error { _, err := f.c.GetRules(ctx, &routingv1.GetRulesRequest{Version: 7}); return err }, fault.NotFound, "rules_version_not_found"},
		{"PutRules bad rule", func() error {
			_, err := f.c.PutRules(ctx, &routingv1.PutRulesRequest{Rules: []*routingv1.RoutingRule{{Condition: "true"}}})
			return err
		}, fault.InvalidArgument, "invalid_rule"},
		{"ListRuleVersions negative", func() error {
			_, err := f.c.ListRuleVersions(ctx, &routingv1.ListRuleVersionsRequest{Limit: -1})
			return err
		}, fault.InvalidArgument, "invalid_limit"},
		{"TestRules bad draft", func() error {
			_, err := f.c.TestRules(ctx, &routingv1.TestRulesRequest{Draft: &routingv1.RuleSet{Rules: []*routingv1.RoutingRule{{Condition: "1 +", Action: "round_robin('a')"}}}})
			return err
		}, fault.InvalidArgument, "invalid_rule"},
		{"TestRules priority", func() error { _, err := f.c.TestRules(ctx, &routingv1.TestRulesRequest{Priority: 500}); return err }, fault.InvalidArgument, "invalid_priority"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantFault(t, tc.call(), tc.kind, tc.code) })
	}
}

func TestAssignAndRelease(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.agent(t, "a1", 2, online)
	f.agent(t, "a2", 2, online)
	f.agent(t, "a3", 2, away)

	// No rules: round robin over everyone online.
	r1 := f.assign(t, &routingv1.AssignRequest{SessionId: "s1"})
	r2 := f.assign(t, &routingv1.AssignRequest{SessionId: "s2"})
	if !r1.GetAssigned() || !r2.GetAssigned() || r1.GetAgentId() == r2.GetAgentId() || r1.GetRuleIndex() != -1 || r1.GetAction() != "round_robin('')" {
		t.Fatalf("first two sessions: %v / %v", r1, r2)
	}
	// Assign is idempotent.
	if again := f.assign(t, &routingv1.AssignRequest{SessionId: "s1"}); !again.GetAssigned() || again.GetAgentId() != r1.GetAgentId() {
		t.Errorf("second Assign of s1 = %v", again)
	}
	f.assign(t, &routingv1.AssignRequest{SessionId: "s3"})
	f.assign(t, &routingv1.AssignRequest{SessionId: "s4"})
	// Capacity 2+2 is used up; a3 is away: s5 waits.
	q := f.assign(t, &routingv1.AssignRequest{SessionId: "s5"})
	if q.GetAssigned() || q.GetQueuePosition() != 1 || q.GetGroup() != "" {
		t.Fatalf("s5 = %v, want queued at 1", q)
	}
	if again := f.assign(t, &routingv1.AssignRequest{SessionId: "s5"}); again.GetAssigned() || again.GetQueuePosition() != 1 {
		t.Errorf("second Assign of s5 = %v", again)
	}
	for _, id := range []string{"a1", "a2"} {
		if n := f.state(t, id).GetCurrentSessionCount(); n != 2 {
			t.Errorf("%s holds %d sessions, want 2", id, n)
		}
	}

	events := f.routedEvents()
	// Releasing s1 frees its agent, who gets s5 at once.
	rel := must[*routingv1.ReleaseResponse](t)(f.c.Release(ctx, &routingv1.ReleaseRequest{SessionId: "s1", AgentId: r1.GetAgentId()}))
	if !rel.GetReleased() {
		t.Errorf("Release s1 released nothing")
	}
	ev := events.next(1)[0]
	if ev.GetSessionId() != "s5" || ev.GetAgentId() != r1.GetAgentId() || ev.GetGroup() != "" || ev.GetRoutedAt() == nil {
		t.Errorf("routed event = %v", ev)
	}
	if pos := must[*routingv1.GetQueuePositionResponse](t)(f.c.GetQueuePosition(ctx, &routingv1.GetQueuePositionRequest{SessionId: "s5"})); pos.GetQueued() || pos.GetAgentId() != r1.GetAgentId() {
		t.Errorf("s5 position = %v", pos)
	}
	// Releasing twice does not decrement twice.
	rel = must[*routingv1.ReleaseResponse](t)(f.c.Release(ctx, &routingv1.ReleaseRequest{SessionId: "s1", AgentId: r1.GetAgentId()}))
	if rel.GetReleased() {
		t.Errorf("second Release of s1 released something")
	}
	if n := f.state(t, r1.GetAgentId()).GetCurrentSessionCount(); n != 2 {
		t.Errorf("%s holds %d sessions after double release, want 2 (s5 and its other one)", r1.GetAgentId(), n)
	}
	// Release without agent id finds the holder.
	rel = must[*routingv1.ReleaseResponse](t)(f.c.Release(ctx, &routingv1.ReleaseRequest{SessionId: "s5"}))
	if !rel.GetReleased() || f.state(t, r1.GetAgentId()).GetCurrentSessionCount() != 1 {
		t.Errorf("Release(s5, \"\") = %v", rel)
	}
	// Releasing with the wrong agent does nothing.
	rel = must[*routingv1.ReleaseResponse](t)(f.c.Release(ctx, &routingv1.ReleaseRequest{SessionId: "s2", AgentId: "a3"}))
	if rel.GetReleased() {
		t.Errorf("Release with the wrong agent released")
	}
	events.none(100 * time.Millisecond)
}

func TestRulesLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	// No rules yet.
	got := must[*routingv1.GetRulesResponse](t)(f.c.GetRules(ctx, &routingv1.GetRulesRequest{}))
	if got.GetVersion() != 0 || len(got.GetRules()) != 0 {
		t.Fatalf("initial rules = %v", got)
	}
	// The seed example needs its groups.
	seed := []string{"user_level == 'VIP'", "assign_to_group('premium')", "true", "round_robin('default_group')"}
	_, err := f.c.PutRules(ctx, &routingv1.PutRulesRequest{Rules: []*routingv1.RoutingRule{{Condition: seed[0], Action: seed[1]}, {Condition: seed[2], Action: seed[3]}}})
	fe := wantFault(t, err, fault.InvalidArgument, "unknown_group")
	if !strings.Contains(fe.Message, `rule 0: action: unknown group "premium"`) || !strings.Contains(fe.Message, `rule 1: action: unknown group "default_group"`) {
		t.Errorf("message = %q", fe.Message)
	}
	f.groups(t, "premium", "default_group")
	if v := f.putRules(t, seed...); v != 1 {
		t.Fatalf("first version = %d", v)
	}
	got = must[*routingv1.GetRulesResponse](t)(f.c.GetRules(ctx, &routingv1.GetRulesRequest{}))
	if got.GetVersion() != 1 || len(got.GetRules()) != 2 || got.GetRules()[0].GetCondition() != seed[0] || got.GetRules()[1].GetAction() != seed[3] || got.GetUpdatedBy() != "admin@example.com" || got.GetUpdatedAt() == nil {
		t.Fatalf("rules = %v", got)
	}

	// An invalid set is rejected, naming the rule and the CEL error; version 1 stays.
	bad := []struct {
		rules []*routingv1.RoutingRule
		field string
		want  string
	}{
		{[]*routingv1.RoutingRule{{Condition: "true", Action: "round_robin('premium')"}, {Condition: "user_level ==", Action: "round_robin('premium')"}},
			"routing_rules[1].condition", "rule 1: condition: ERROR: <input>:1:14: Syntax error: mismatched input"},
		{[]*routingv1.RoutingRule{{Condition: "user_level", Action: "round_robin('premium')"}, {Condition: "hour + 1", Action: "round_robin('premium')"}},
			"routing_rules[1].condition", "rule 1: condition: condition yields int, not bool"},
		{[]*routingv1.RoutingRule{{Condition: "channel == 1", Action: "round_robin('premium')"}},
			"routing_rules[0].condition", "rule 0: condition: ERROR: <input>:1:9: found no matching overload for '_==_' applied to '(string, int)'"},
		{[]*routingv1.RoutingRule{{Condition: "true", Action: "assign_to_group('')"}},
			"routing_rules[0].action", "rule 0: action: assign_to_group: group \"\" is not a valid group name"},
		{[]*routingv1.RoutingRule{{Condition: "true", Action: "send_to('premium')"}},
			"routing_rules[0].action", "rule 0: action: unknown action \"send_to\""},
	}
	for _, b := range bad {
		_, err := f.c.PutRules(ctx, &routingv1.PutRulesRequest{Rules: b.rules})
		fe := wantFault(t, err, fault.InvalidArgument, "invalid_rule")
		if fe.Field != b.field || !strings.Contains(fe.Message, b.want) {
			t.Errorf("PutRules error field %q message %q; want field %q and %q", fe.Field, fe.Message, b.field, b.want)
		}
	}
	if got := must[*routingv1.GetRulesResponse](t)(f.c.GetRules(ctx, &routingv1.GetRulesRequest{})); got.GetVersion() != 1 {
		t.Errorf("version after rejected puts = %d", got.GetVersion())
	}

	// assign_to_agent must name an agent with a routing profile.
	_, err = f.c.PutRules(ctx, &routingv1.PutRulesRequest{Rules: []*routingv1.RoutingRule{{Condition: "true", Action: "assign_to_agent('ghost', 'premium')"}}})
	if fe := wantFault(t, err, fault.InvalidArgument, "unknown_agent"); fe.Field != "routing_rules[0].action" || !strings.Contains(fe.Message, `rule 0: action: unknown agent "ghost"`) {
		t.Errorf("unknown agent: field %q message %q", fe.Field, fe.Message)
	}

	// TestRules evaluates without assigning.
	test := func(req *routingv1.TestRulesRequest) *routingv1.TestRulesResponse {
		t.Helper()
		return must[*routingv1.TestRulesResponse](t)(f.c.TestRules(ctx, req))
	}
	tr := test(&routingv1.TestRulesRequest{Profile: profileOf(t, map[string]any{"user_level": "VIP"})})
	if !tr.GetMatched() || tr.GetRuleIndex() != 0 || tr.GetAction() != "assign_to_group('premium')" || tr.GetParsedAction().GetKind() != "assign_to_group" || tr.GetParsedAction().GetGroup() != "premium" || tr.GetRulesVersion() != 1 {
		t.Errorf("TestRules(VIP) = %v", tr)
	}
	tr = test(&routingv1.TestRulesRequest{})
	if tr.GetRuleIndex() != 1 || tr.GetAction() != "round_robin('default_group')" || len(tr.GetTrace()) != 2 || !strings.Contains(tr.GetTrace()[0].GetError(), "user_level") {
		t.Errorf("TestRules(no profile) = %v", tr)
	}
	// A draft is evaluated instead of the rules in force, with the time given.
	tr = test(&routingv1.TestRulesRequest{At: timestamppb.New(time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)),
		Draft: &routingv1.RuleSet{Rules: []*routingv1.RoutingRule{{Condition: "hour >= 22 && weekday == 6", Action: "queue('premium', 9)"}}}})
	if tr.GetRuleIndex() != 0 || tr.GetParsedAction().GetPriority() != 9 || tr.GetRulesVersion() != 0 {
		t.Errorf("TestRules(draft) = %v", tr)
	}
	tr = test(&routingv1.TestRulesRequest{Draft: &routingv1.RuleSet{}})
	if tr.GetMatched() || tr.GetRuleIndex() != -1 || tr.GetAction() != "round_robin('')" {
		t.Errorf("TestRules(empty draft) = %v", tr)
	}
	if n := must[*routingv1.ListQueuesResponse](t)(f.c.ListQueues(ctx, &routingv1.ListQueuesRequest{})); len(n.GetQueues()) != 0 {
		t.Errorf("TestRules queued something: %v", n)
	}

	// Every put is a new version; history is kept.
	if v := f.putRules(t); v != 2 {
		t.Errorf("second version = %d", v)
	}
	hist := must[*routingv1.ListRuleVersionsResponse](t)(f.c.ListRuleVersions(ctx, &routingv1.ListRuleVersionsRequest{}))
	if len(hist.GetVersions()) != 2 || hist.GetVersions()[0].GetVersion() != 2 || hist.GetVersions()[1].GetRuleCount() != 2 {
		t.Errorf("history = %v", hist)
	}
	if old := must[*routingv1.GetRulesResponse](t)(f.c.GetRules(ctx, &routingv1.GetRulesRequest{Version: 1})); len(old.GetRules()) != 2 {
		t.Errorf("version 1 = %v", old)
	}
}

func TestRulesReachEveryReplica(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.replica(Config{}), e.replica(Config{})
	ca, cb := e.client(a), e.client(b)
	for _, g := range []string{"premium", "default_group"} {
		must[*routingv1.CreateGroupResponse](t)(ca.CreateGroup(ctx, &routingv1.CreateGroupRequest{Name: g}))
	}
	must[*routingv1.UpsertAgentResponse](t)(ca.UpsertAgent(ctx, &routingv1.UpsertAgentRequest{AgentId: "p1", Groups: []string{"premium"}}))
	must[*routingv1.SetAgentStatusResponse](t)(ca.SetAgentStatus(ctx, &routingv1.SetAgentStatusRequest{AgentId: "p1", Status: online}))
	// b routes with no rules first, so it caches version 0.
	vip := profileOf(t, map[string]any{"user_level": "VIP"})
	if r := must[*routingv1.AssignResponse](t)(cb.Assign(ctx, &routingv1.AssignRequest{SessionId: "s0", Profile: vip})); r.GetRulesVersion() != 0 {
		t.Fatalf("s0 = %v", r)
	}
	must[*routingv1.PutRulesResponse](t)(ca.PutRules(ctx, &routingv1.PutRulesRequest{Rules: []*routingv1.RoutingRule{
		{Condition: "user_level == 'VIP'", Action: "assign_to_group('premium')"}, {Condition: "true", Action: "round_robin('default_group')"}}}))
	// The very next Assign on b uses version 1.
	r := must[*routingv1.AssignResponse](t)(cb.Assign(ctx, &routingv1.AssignRequest{SessionId: "s1", Profile: vip}))
	if r.GetRulesVersion() != 1 || r.GetRuleIndex() != 0 || r.GetGroup() != "premium" || r.GetAgentId() != "p1" {
		t.Errorf("s1 on the other replica = %v", r)
	}
	r = must[*routingv1.AssignResponse](t)(cb.Assign(ctx, &routingv1.AssignRequest{SessionId: "s2"}))
	if r.GetAssigned() || r.GetGroup() != "default_group" || r.GetRuleIndex() != 1 {
		t.Errorf("s2 = %v, want queued in default_group (nobody in it)", r)
	}
}

func TestActions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.groups(t, "premium", "tech", "after_sales", "empty")
	f.agent(t, "p1", 3, online, "premium")
	f.agent(t, "p2", 3, online, "premium")
	f.agent(t, "p3", 3, online, "premium")
	f.agent(t, "t1", 2, online, "tech")
	f.agent(t, "t2", 2, online, "tech")
	f.agent(t, "x1", 2, away, "after_sales")
	f.putRules(t,
		"intent == 'vip'", "assign_to_group('premium')",
		"intent == 'rr'", "round_robin('tech')",
		"intent == 'direct'", "assign_to_agent('t2')",
		"intent == 'direct_fallback'", "assign_to_agent('x1', 'premium')",
		"intent == 'sticky'", "assign_to_last_agent('tech')",
		"intent == 'wait'", "queue('empty', 7)",
		"intent == 'away_group'", "assign_to_group('after_sales')",
	)
	n := 0
	assign := func(req *routingv1.AssignRequest) *routingv1.AssignResponse {
		t.Helper()
		n++
		req.SessionId = fmt.Sprintf("s%d", n)
		return f.assign(t, req)
	}

	t.Run("assign_to_group picks the least loaded, then the longest idle", func(t *testing.T) {
		var got []string
		for range 6 {
			got = append(got, assign(&routingv1.AssignRequest{Intent: "vip"}).GetAgentId())
		}
		// Loads go 0,0,0 → each gets one (p1, p2, p3 in order of idleness: never assigned ties
		// broken by id), then again in the order they were last assigned.
		if want := []string{"p1", "p2", "p3", "p1", "p2", "p3"}; !slices.Equal(got, want) {
			t.Errorf("assignments = %v, want %v", got, want)
		}
		// p2 frees a session: it is now the least loaded.
		must[*routingv1.ReleaseResponse](t)(f.c.Release(ctx, &routingv1.ReleaseRequest{SessionId: "s2"}))
		if r := assign(&routingv1.AssignRequest{Intent: "vip"}); r.GetAgentId() != "p2" {
			t.Errorf("after p2 released: %v", r)
		}
	})
	t.Run("round_robin rotates regardless of load", func(t *testing.T) {
		a := assign(&routingv1.AssignRequest{Intent: "rr"}).GetAgentId()
		b := assign(&routingv1.AssignRequest{Intent: "rr"}).GetAgentId()
		if a == b || !slices.Contains([]string{"t1", "t2"}, a) {
			t.Errorf("round robin gave %s then %s", a, b)
		}
	})
	t.Run("assign_to_agent", func(t *testing.T) {
		// t2 has 1 of 2: it takes one more, then the default route (everyone) applies.
		if r := assign(&routingv1.AssignRequest{Intent: "direct"}); r.GetAgentId() != "t2" {
			t.Errorf("direct = %v", r)
		}
		if r := assign(&routingv1.AssignRequest{Intent: "direct"}); !r.GetAssigned() || r.GetAgentId() == "t2" || r.GetGroup() != "" {
			t.Errorf("direct to a full agent = %v, want another agent of everyone", r)
		}
		// x1 is away: the fallback group decides.
		if r := assign(&routingv1.AssignRequest{Intent: "direct_fallback"}); r.GetGroup() != "premium" || !strings.HasPrefix(r.GetAgentId(), "p") {
			t.Errorf("direct with fallback = %v", r)
		}
	})
	t.Run("assign_to_last_agent", func(t *testing.T) {
		must[*routingv1.ReleaseResponse](t)(f.c.Release(ctx, &routingv1.ReleaseRequest{SessionId: "s10"})) // t2's
		if r := assign(&routingv1.AssignRequest{Intent: "sticky", LastAgentId: "t2"}); r.GetAgentId() != "t2" || r.GetGroup() != "tech" {
			t.Errorf("sticky to t2 = %v", r)
		}
		// No last agent: the fallback group decides (t1 has room).
		if r := assign(&routingv1.AssignRequest{Intent: "sticky"}); r.GetAgentId() != "t1" || r.GetGroup() != "tech" {
			t.Errorf("sticky without agent = %v", r)
		}
		// The last agent is full and so is the fallback group: queued there.
		if r := assign(&routingv1.AssignRequest{Intent: "sticky", LastAgentId: "t1"}); r.GetAssigned() || r.GetGroup() != "tech" || r.GetQueuePosition() != 1 {
			t.Errorf("sticky to a full agent = %v", r)
		}
		// The last agent has room although the fallback group has a queue.
		if r := assign(&routingv1.AssignRequest{Intent: "sticky", LastAgentId: "p2"}); r.GetAgentId() != "p2" {
			t.Errorf("sticky to p2 = %v", r)
		}
	})
	t.Run("queue orders by priority then arrival", func(t *testing.T) {
		queued := func(prio int32) (string, int64) {
			t.Helper()
			r := assign(&routingv1.AssignRequest{Intent: "away_group", Priority: prio})
			if r.GetAssigned() || r.GetGroup() != "after_sales" {
				t.Fatalf("priority %d: %v", prio, r)
			}
			return fmt.Sprint("s", n), r.GetQueuePosition()
		}
		low, lowPos := queued(1)
		high, highPos := queued(50)
		mid, midPos := queued(10)
		mid2, mid2Pos := queued(10)
		if lowPos != 1 || highPos != 1 || midPos != 2 || mid2Pos != 3 {
			t.Errorf("positions at arrival: %d %d %d %d", lowPos, highPos, midPos, mid2Pos)
		}
		pos := func(id string) int64 {
			return must[*routingv1.GetQueuePositionResponse](t)(f.c.GetQueuePosition(ctx, &routingv1.GetQueuePositionRequest{SessionId: id})).GetQueuePosition()
		}
		if got := []int64{pos(high), pos(mid), pos(mid2), pos(low)}; !slices.Equal(got, []int64{1, 2, 3, 4}) {
			t.Errorf("positions now: %v", got)
		}
		// queue(g, p) queues even with a request priority, in its own group.
		if w := assign(&routingv1.AssignRequest{Intent: "wait", Priority: 100}); w.GetAssigned() || w.GetGroup() != "empty" || w.GetAction() != "queue('empty', 7)" {
			t.Errorf("queue action = %v", w)
		}
		events := f.routedEvents()
		f.agent(t, "x1", 2, online, "after_sales") // x1 comes back: takes the two best of after_sales
		got := events.next(2)
		if got[0].GetSessionId() != high || got[1].GetSessionId() != mid || got[0].GetAgentId() != "x1" || got[0].GetGroup() != "after_sales" {
			t.Errorf("drained %v, %v; want %s then %s", got[0], got[1], high, mid)
		}
		if got := []int64{pos(mid2), pos(low)}; !slices.Equal(got, []int64{1, 2}) {
			t.Errorf("positions after the drain: %v", got)
		}
	})
}
