package platform_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/client"
	"github.com/helmdesk/helmdesk/services/platform"
	"github.com/helmdesk/helmdesk/services/platform/platformtest"
)

const seedRules = `{"routing_rules":[{"condition":"user_level == 'VIP'","action":"assign_to_group('premium')"},{"condition":"true","action":"round_robin('default_group')"}]}`

func TestRoutingRulesOverREST(t *testing.T) {
	ctx := context.Background()
	dev := platformtest.Start(t, t.TempDir(), io.Discard, nil)
	api := client.New(dev.URL)
	r(api.Setup(ctx, "Acme", adminEmail, adminPass, "Ada")).must(t)
	admin := api.WithToken(r(api.Login(ctx, adminEmail, adminPass)).must(t))

	// The seed rules name groups that must exist first.
	if status, code := apiStatus(admin.Do(ctx, http.MethodPut, "/api/v1/routing/rules", []byte(seedRules), nil)); status != 400 {
		t.Fatalf("rules naming missing groups: %d %s, want 400", status, code)
	}
	for _, g := range []string{"premium", "default_group"} {
		if err := admin.Do(ctx, http.MethodPost, "/api/v1/groups", map[string]string{"name": g}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if status, code := apiStatus(admin.Do(ctx, http.MethodPost, "/api/v1/groups", map[string]string{"name": "premium"}, nil)); status != 409 || code != "group_exists" {
		t.Fatalf("duplicate group: %d %s", status, code)
	}
	if status, _ := apiStatus(admin.Do(ctx, http.MethodPost, "/api/v1/groups", map[string]string{"name": "Bad Name!"}, nil)); status != 400 {
		t.Fatalf("bad group name: %d", status)
	}
	var put map[string]any
	if err := admin.Do(ctx, http.MethodPut, "/api/v1/routing/rules", []byte(seedRules), &put); err != nil {
		t.Fatal(err)
	}
	type rule struct {
		Condition string `json:"condition"`
		Action    string `json:"action"`
	}
	var got struct {
		RoutingRules []rule `json:"routing_rules"`
		Version      int64  `json:"version"`
	}
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/routing/rules", nil, &got); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"routing_rules": got.RoutingRules})
	if string(b) != seedRules || got.Version != 1 {
		t.Fatalf("stored rules %s v%d, want the seed verbatim", b, got.Version)
	}
	// A bad rule is refused with its index and the CEL error; the old rules stay.
	bad := `{"routing_rules":[{"condition":"true","action":"round_robin('premium')"},{"condition":"user_level ==","action":"round_robin('premium')"}]}`
	err := admin.Do(ctx, http.MethodPut, "/api/v1/routing/rules", []byte(bad), nil)
	apiErr, ok := err.(*client.APIError)
	if !ok || apiErr.Status != 400 || apiErr.Field != "routing_rules[1].condition" || !strings.Contains(apiErr.Message, "rule 1") {
		t.Fatalf("bad CEL: %+v", err)
	}
	for _, tc := range []string{
		`{"routing_rules":[{"condition":"1 + 1","action":"round_robin('premium')"}]}`, // not a bool
		`{"routing_rules":[{"condition":"true","action":"teleport('premium')"}]}`,
		`{"routing_rules":[{"condition":"true","action":"assign_to_group()"}]}`,
		`{"routing_rules":[{"condition":"true"}]}`,
		`{"rules":[]}`,
	} {
		if status, _ := apiStatus(admin.Do(ctx, http.MethodPut, "/api/v1/routing/rules", []byte(tc), nil)); status != 400 {
			t.Errorf("rules %s: %d, want 400", tc, status)
		}
	}
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/routing/rules", nil, &got); err != nil || got.Version != 1 {
		t.Fatalf("rules after refused updates: v%d (%v)", got.Version, err)
	}
	// Test a profile without assigning anything.
	var res map[string]any
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/routing/test", map[string]any{"profile": map[string]any{"user_level": "VIP"}}, &res); err != nil {
		t.Fatal(err)
	}
	if res["rule_index"] != float64(0) || res["action"] != "assign_to_group('premium')" {
		t.Fatalf("test VIP: %v", res)
	}
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/routing/test", map[string]any{"profile": map[string]any{"name": "no level"}}, &res); err != nil || res["rule_index"] != float64(1) {
		t.Fatalf("test without user_level: %v (%v)", res, err)
	}
}

func TestRoutingByRulesCapacityAndQueue(t *testing.T) {
	ctx := context.Background()
	dev := platformtest.Start(t, t.TempDir(), io.Discard, func(c *platform.Config) { c.Routing.PresenceGrace = time.Second })
	api := client.New(dev.URL)
	r(api.Setup(ctx, "Acme", adminEmail, adminPass, "Ada")).must(t)
	admin := api.WithToken(r(api.Login(ctx, adminEmail, adminPass)).must(t))
	for _, g := range []string{"premium", "default_group"} {
		if err := admin.Do(ctx, http.MethodPost, "/api/v1/groups", map[string]string{"name": g}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Do(ctx, http.MethodPut, "/api/v1/routing/rules", []byte(seedRules), nil); err != nil {
		t.Fatal(err)
	}
	vip := r(admin.CreateAgent(ctx, client.NewAgent{Email: "vip@acme.test", Password: agentPass, Name: "V", MaxSessions: 1, Groups: []string{"premium"}})).must(t)
	std := r(admin.CreateAgent(ctx, client.NewAgent{Email: "std@acme.test", Password: agentPass, Name: "S", MaxSessions: 2, Groups: []string{"default_group"}})).must(t)
	vipAPI := api.WithToken(r(api.Login(ctx, "vip@acme.test", agentPass)).must(t))
	stdAPI := api.WithToken(r(api.Login(ctx, "std@acme.test", agentPass)).must(t))
	r(stdAPI.SetStatus(ctx, std.ID, "online")).must(t)

	// Nobody in premium is online: the VIP waits in premium's queue, told its place.
	v1 := r(api.StartSession(ctx, client.StartSession{UserID: "vip-1", Profile: map[string]any{"user_level": "VIP"}})).must(t)
	if v1.Status != "queued" {
		t.Fatalf("VIP with premium offline = %+v, want queued", v1)
	}
	var q map[string]any
	if err := api.WithToken(v1.CustomerToken).Do(ctx, http.MethodGet, "/api/v1/sessions/"+v1.SessionID, nil, &q); err != nil || q["queue_position"] != float64(1) || q["group"] != "premium" {
		t.Fatalf("queued VIP session = %v (%v)", q, err)
	}
	vipSock := r(api.DialCustomer(ctx, v1.CustomerToken)).must(t)
	defer vipSock.CloseNow()
	g := readUntil(t, vipSock, "greeting", isType("session"))
	if f := g[len(g)-1]; f.Status != "queued" || f.QueuePosition != 1 {
		t.Fatalf("queued greeting = %+v", f)
	}
	// Regular customers go round robin in default_group, never over capacity.
	s1 := r(api.StartSession(ctx, client.StartSession{UserID: "c-1"})).must(t)
	s2 := r(api.StartSession(ctx, client.StartSession{UserID: "c-2"})).must(t)
	s3 := r(api.StartSession(ctx, client.StartSession{UserID: "c-3"})).must(t)
	if s1.AgentID != std.ID || s2.AgentID != std.ID || s3.Status != "queued" {
		t.Fatalf("default group: %+v %+v %+v", s1, s2, s3)
	}
	var st map[string]any
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/agents/online_status?agent_id="+std.ID, nil, &st); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(st))
	for k := range st {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "agent_id,current_session_count,status" || st["agent_id"] != std.ID || st["status"] != "online" || st["current_session_count"] != float64(2) {
		t.Fatalf("online_status = %v", st)
	}

	// The premium agent comes online: the VIP is assigned at once.
	vipAgentSock := r(vipAPI.DialAgent(ctx, vipAPI.Token)).must(t)
	r(vipAPI.SetStatus(ctx, vip.ID, "online")).must(t)
	readUntil(t, vipSock, "assignment", func(f client.Frame) bool { return f.Type == "session" && f.Status == "assigned" && f.AgentID == vip.ID })
	readUntil(t, vipAgentSock, "assignment at the agent", func(f client.Frame) bool { return f.Type == "session" && f.SessionID == v1.SessionID })

	// Closing a default-group session frees capacity for the waiting one.
	s3Sock := r(api.DialCustomer(ctx, s3.CustomerToken)).must(t)
	defer s3Sock.CloseNow()
	readUntil(t, s3Sock, "greeting", isType("session"))
	if err := stdAPI.Do(ctx, http.MethodPost, "/api/v1/sessions/"+s1.SessionID+"/close", nil, nil); err != nil {
		t.Fatal(err)
	}
	readUntil(t, s3Sock, "assignment after close", func(f client.Frame) bool { return f.Type == "session" && f.Status == "assigned" && f.AgentID == std.ID })

	// Presence follows the console socket: when it drops, the agent goes away after
	// the grace period.
	_ = vipAgentSock.CloseNow()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := r(admin.OnlineStatus(ctx, vip.ID)).must(t)
		if st.Status == "away" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent still %s after the socket dropped", st.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
