package platform_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/client"
	"github.com/helmdesk/helmdesk/services/platform/platformtest"
)

// world is a platform with an admin, two agents (one online) and two customers.
type world struct {
	api, admin, agent, other *client.Client
	agentID, otherID         string
	sess1, sess2             client.SessionStart
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	dev := platformtest.Start(t, t.TempDir(), io.Discard, nil)
	w := &world{api: client.New(dev.URL)}
	r(w.api.Setup(ctx, "Acme", adminEmail, adminPass, "Ada")).must(t)
	w.admin = w.api.WithToken(r(w.api.Login(ctx, adminEmail, adminPass)).must(t))
	a := r(w.admin.CreateAgent(ctx, client.NewAgent{Email: agentEmail, Password: agentPass, Name: "A", MaxSessions: 1})).must(t)
	o := r(w.admin.CreateAgent(ctx, client.NewAgent{Email: "other@acme.test", Password: agentPass, Name: "O", MaxSessions: 1})).must(t)
	w.agentID, w.otherID = a.ID, o.ID
	w.agent = w.api.WithToken(r(w.api.Login(ctx, agentEmail, agentPass)).must(t))
	w.other = w.api.WithToken(r(w.api.Login(ctx, "other@acme.test", agentPass)).must(t))
	r(w.agent.SetStatus(ctx, w.agentID, "online")).must(t)
	w.sess1 = r(w.api.StartSession(ctx, client.StartSession{UserID: "c1"})).must(t)
	w.sess2 = r(w.api.StartSession(ctx, client.StartSession{UserID: "c2"})).must(t) // agent is full: queued
	if w.sess1.AgentID != w.agentID || w.sess2.Status != "queued" {
		t.Fatalf("setup: sess1 %+v sess2 %+v", w.sess1, w.sess2)
	}
	return w
}

func TestRESTRejectsBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	w := newWorld(t)
	cust1 := w.api.WithToken(w.sess1.CustomerToken)
	cust2 := w.api.WithToken(w.sess2.CustomerToken)
	s1 := "/api/v1/sessions/" + w.sess1.SessionID
	huge := `{"organization":"` + strings.Repeat("x", 2<<20) + `"}`
	tests := []struct {
		name   string
		c      *client.Client
		method string
		path   string
		body   any // string bodies are sent raw
		status int
		code   string
	}{
		// setup
		{"setup twice", w.api, "POST", "/api/v1/setup", map[string]any{"organization": "B", "admin": map[string]string{"email": "b@b.test", "password": "pass-word-1", "name": "B"}}, 409, "setup_already_done"},
		{"setup malformed json", w.api, "POST", "/api/v1/setup", `{"organization":`, 400, "invalid_json"},
		{"setup oversized body", w.api, "POST", "/api/v1/setup", huge, 413, "body_too_large"},
		{"setup wrong type", w.api, "POST", "/api/v1/setup", `{"organization":5}`, 400, "invalid_type"},
		// login
		{"login empty body", w.api, "POST", "/api/v1/auth/login", ``, 400, "empty_body"},
		{"login missing password", w.api, "POST", "/api/v1/auth/login", map[string]string{"email": adminEmail}, 400, "missing_credentials"},
		{"login wrong password", w.api, "POST", "/api/v1/auth/login", map[string]string{"email": adminEmail, "password": "nope-nope-1"}, 401, "invalid_credentials"},
		{"login unknown user", w.api, "POST", "/api/v1/auth/login", map[string]string{"email": "ghost@acme.test", "password": "nope-nope-1"}, 401, "invalid_credentials"},
		{"login unknown field", w.api, "POST", "/api/v1/auth/login", `{"email":"a@b.c","passwrod":"x"}`, 400, "unknown_field"},
		{"login trailing data", w.api, "POST", "/api/v1/auth/login", `{"email":"a@b.c","password":"x"} {}`, 400, "invalid_json"},
		// agents
		{"create agent without token", w.api, "POST", "/api/v1/agents", map[string]any{}, 401, "invalid_token"},
		{"create agent with garbage token", w.api.WithToken("hdu_garbage"), "POST", "/api/v1/agents", map[string]any{}, 401, "invalid_token"},
		{"create agent as agent", w.agent, "POST", "/api/v1/agents", map[string]any{"email": "x@acme.test", "password": "pass-word-1", "name": "X"}, 403, "forbidden"},
		{"create agent as customer", cust1, "POST", "/api/v1/agents", map[string]any{"email": "x@acme.test", "password": "pass-word-1", "name": "X"}, 403, "forbidden"},
		{"create agent bad email", w.admin, "POST", "/api/v1/agents", map[string]any{"email": "not-an-email", "password": "pass-word-1", "name": "X"}, 400, "invalid_email"},
		{"create agent weak password", w.admin, "POST", "/api/v1/agents", map[string]any{"email": "x@acme.test", "password": "short", "name": "X"}, 400, "weak_password"},
		{"create agent capacity 0", w.admin, "POST", "/api/v1/agents", map[string]any{"email": "x@acme.test", "password": "pass-word-1", "name": "X", "max_sessions": 0}, 400, "invalid_max_sessions"},
		{"create agent capacity 101", w.admin, "POST", "/api/v1/agents", map[string]any{"email": "x@acme.test", "password": "pass-word-1", "name": "X", "max_sessions": 101}, 400, "invalid_max_sessions"},
		{"create agent bad role", w.admin, "POST", "/api/v1/agents", map[string]any{"email": "x@acme.test", "password": "pass-word-1", "name": "X", "role": "root"}, 400, "invalid_role"},
		{"create agent duplicate email", w.admin, "POST", "/api/v1/agents", map[string]any{"email": agentEmail, "password": "pass-word-1", "name": "X"}, 409, "email_taken"},
		{"create agent html name", w.admin, "POST", "/api/v1/agents", map[string]any{"email": "x@acme.test", "password": "pass-word-1", "name": "<script>"}, 400, "invalid_name"},
		// status
		{"status invalid value", w.agent, "PUT", "/api/v1/agents/" + w.agentID + "/status", map[string]string{"status": "busy"}, 400, "invalid_status"},
		{"status of another agent", w.agent, "PUT", "/api/v1/agents/" + w.otherID + "/status", map[string]string{"status": "online"}, 403, "forbidden"},
		{"status of unknown agent", w.admin, "PUT", "/api/v1/agents/nobody/status", map[string]string{"status": "online"}, 404, "user_not_found"},
		{"online status without id", w.admin, "GET", "/api/v1/agents/online_status", nil, 400, "invalid_agent_id"},
		// customer sessions
		{"start without user id", w.api, "POST", "/api/v1/customer/sessions", map[string]any{}, 400, "invalid_user_id"},
		{"start with hostile user id", w.api, "POST", "/api/v1/customer/sessions", map[string]any{"user_id": "a b<script>"}, 400, "invalid_user_id"},
		{"start with bad profile key", w.api, "POST", "/api/v1/customer/sessions", map[string]any{"user_id": "u", "profile": map[string]any{"$where": 1}}, 400, "invalid_profile"},
		{"start with profile not an object", w.api, "POST", "/api/v1/customer/sessions", `{"user_id":"u","profile":[1]}`, 400, "invalid_type"},
		{"start with bad page url", w.api, "POST", "/api/v1/customer/sessions", map[string]any{"user_id": "u", "page_url": "javascript:alert(1)"}, 400, "invalid_page_url"},
		// history
		{"messages negative after_seq", w.admin, "GET", s1 + "/messages?after_seq=-1", nil, 400, "invalid_after_seq"},
		{"messages non-numeric after_seq", w.admin, "GET", s1 + "/messages?after_seq=abc", nil, 400, "invalid_after_seq"},
		{"messages limit too big", w.admin, "GET", s1 + "/messages?limit=100000", nil, 400, "invalid_limit"},
		{"messages of unknown session", w.admin, "GET", "/api/v1/sessions/nope/messages", nil, 404, "session_not_found"},
		{"messages of another customer's session", cust2, "GET", s1 + "/messages", nil, 404, "session_not_found"},
		{"messages of a session assigned to someone else", w.other, "GET", s1 + "/messages", nil, 404, "session_not_found"},
		{"messages without token", w.api, "GET", s1 + "/messages", nil, 401, "invalid_token"},
		{"session list of another agent", w.agent, "GET", "/api/v1/sessions?agent_id=" + w.otherID, nil, 403, "forbidden"},
		{"session list bad status", w.admin, "GET", "/api/v1/sessions?status=open", nil, 400, "invalid_status"},
		// sockets and unknown routes
		{"customer socket without token", w.api, "GET", "/api/v1/customer/ws", nil, 401, "invalid_token"},
		{"agent socket with customer token", w.api.WithToken(w.sess1.CustomerToken), "GET", "/api/v1/agent/ws", nil, 403, "user_token_required"},
		{"customer socket with agent token", w.agent, "GET", "/api/v1/customer/ws", nil, 403, "customer_token_required"},
		{"unknown route", w.admin, "GET", "/api/v1/nope", nil, 404, "route_not_found"},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if s, ok := body.(string); ok {
				body = []byte(s)
			}
			err := tt.c.Do(ctx, tt.method, tt.path, body, nil)
			var apiErr *client.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want HTTP %d %s", err, tt.status, tt.code)
			}
			if apiErr.Status != tt.status || apiErr.Code != tt.code || apiErr.Message == "" {
				t.Fatalf("got %d %s %q, want %d %s", apiErr.Status, apiErr.Code, apiErr.Message, tt.status, tt.code)
			}
		})
	}

	// Nothing bad input did left a trace: still one admin and two agents.
	var agents struct {
		Agents []client.User `json:"agents"`
	}
	if err := w.admin.Do(ctx, http.MethodGet, "/api/v1/agents", nil, &agents); err != nil || len(agents.Agents) != 3 {
		t.Fatalf("users after bad input: %d (%v)", len(agents.Agents), err)
	}
}

func TestSocketRejectsBadFramesAndStaysUsable(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	w := newWorld(t)
	ctx := context.Background()
	cust := r(w.api.DialCustomer(ctx, w.sess1.CustomerToken)).must(t)
	defer cust.CloseNow()
	agent := r(w.agent.DialAgent(ctx, w.agent.Token)).must(t)
	defer agent.CloseNow()
	readUntil(t, cust, "greeting", isType("session"))
	readUntil(t, agent, "greeting", isType("session"))

	tests := []struct {
		name  string
		sock  *client.Socket
		frame string
		code  string
	}{
		{"malformed json", cust, `{"type":`, "invalid_json"},
		{"not an object", cust, `[1,2]`, "invalid_json"},
		{"missing type", cust, `{"text":"hi"}`, "missing_type"},
		{"unknown type", cust, `{"type":"dance"}`, "unknown_type"},
		{"missing client id", cust, `{"type":"message","text":"hi"}`, "invalid_client_msg_id"},
		{"client id too long", cust, `{"type":"message","client_msg_id":"` + strings.Repeat("x", 200) + `","text":"hi"}`, "invalid_client_msg_id"},
		{"empty text", cust, `{"type":"message","client_msg_id":"e1","text":"   "}`, "empty_text"},
		{"text over 16 KiB", cust, `{"type":"message","client_msg_id":"e2","text":"` + strings.Repeat("x", 16<<10+1) + `"}`, "text_too_large"},
		{"customer names another session", cust, `{"type":"message","session_id":"` + w.sess2.SessionID + `","client_msg_id":"e3","text":"hi"}`, "forbidden_session"},
		{"resume without last_seq", cust, `{"type":"resume"}`, "invalid_last_seq"},
		{"resume negative", cust, `{"type":"resume","last_seq":-4}`, "invalid_last_seq"},
		{"agent without session id", agent, `{"type":"message","client_msg_id":"e4","text":"hi"}`, "session_required"},
		{"agent writes to a queued session", agent, `{"type":"message","session_id":"` + w.sess2.SessionID + `","client_msg_id":"e5","text":"hi"}`, "forbidden_session"},
		{"agent writes to an unknown session", agent, `{"type":"message","session_id":"nope","client_msg_id":"e6","text":"hi"}`, "forbidden_session"},
		{"agent resumes a session not theirs", agent, `{"type":"resume","session_id":"` + w.sess2.SessionID + `","last_seq":0}`, "forbidden_session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.sock.SendRaw(ctx, []byte(tt.frame)); err != nil {
				t.Fatal(err)
			}
			got := readUntil(t, tt.sock, "error frame", isType("error"))
			if e := got[len(got)-1]; e.Code != tt.code || e.Message == "" {
				t.Fatalf("error frame = %+v, want code %s", e, tt.code)
			}
		})
	}
	// After all that, both sockets still work and nothing was stored.
	if err := cust.SendMessage(ctx, "", "ok-1", "still here"); err != nil {
		t.Fatal(err)
	}
	got := readUntil(t, cust, "message", isType("message"))
	if m := got[len(got)-1]; m.Seq != 1 || m.Text != "still here" {
		t.Fatalf("first stored message = %+v: bad frames must store nothing", m)
	}
	readUntil(t, agent, "message at agent", isMessage(1))

	// A frame over the read limit closes the socket with 1009 (message too big).
	if err := cust.SendRaw(ctx, []byte(strings.Repeat("x", 300<<10))); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		_, err := cust.Read(rctx)
		if err != nil {
			if code := client.CloseStatus(err); code != 1009 {
				t.Fatalf("close status %d (%v), want 1009", code, err)
			}
			break
		}
	}
}
