package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/helmdesk/helmdesk/pkg/audit"
	"github.com/helmdesk/helmdesk/pkg/auth"
	"github.com/helmdesk/helmdesk/pkg/crypto"
	"github.com/helmdesk/helmdesk/pkg/testdeps"
)

// channelHarness is a gateway with only identity wired (on embedded FerretDB) and
// the channel routes mounted exactly as the route table declares them.
type channelHarness struct {
	g     *Gateway
	srv   *httptest.Server
	admin string // tokens
	agent string
}

func newChannelHarness(t *testing.T) *channelHarness {
	t.Helper()
	uri, dbName := testdeps.Mongo(t)
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	ctx := context.Background()
	id, err := newIdentity(ctx, client.Database(dbName), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.GenerateKey("test")
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.New(ctx, client.Database(dbName), audit.Config{Keys: []crypto.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{identity: id, auditLog: al, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		metrics: &metrics{auditFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_failures"})}}
	mux := http.NewServeMux()
	for _, rt := range g.routeTable() {
		if strings.Contains(rt.pattern, "/api/v1/channels") {
			mux.Handle(rt.pattern, g.guard(rt))
		}
	}
	h := &channelHarness{g: g, srv: httptest.NewServer(withCORS(mux))}
	t.Cleanup(h.srv.Close)
	h.admin = h.userToken(t, "admin@acme.test", auth.RoleAdmin)
	h.agent = h.userToken(t, "bo@acme.test", auth.RoleAgent)
	return h
}

func (h *channelHarness) userToken(t *testing.T, email string, role auth.Role) string {
	t.Helper()
	ctx := context.Background()
	u, err := h.g.identity.createUser(ctx, User{Email: email, Name: "Test", Role: role, MaxSessions: 5}, "pass-word-42")
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := h.g.identity.issue(ctx, tokenUser, u.ID, role, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends a request and decodes the JSON answer into a map.
func (h *channelHarness) do(t *testing.T, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out := map[string]any{}
	b, _ := io.ReadAll(res.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %s", method, path, b)
		}
	}
	return res.StatusCode, out
}

func TestChannelRoutesAccess(t *testing.T) {
	want := map[string]access{
		"GET /api/v1/channels":                     need(PermChannelsRead),
		"POST /api/v1/channels":                    need(PermChannelsManage),
		"GET /api/v1/channels/{id}":                need(PermChannelsRead),
		"PATCH /api/v1/channels/{id}":              need(PermChannelsManage),
		"GET /api/v1/channels/by_key/{key}/widget": public,
	}
	g := &Gateway{}
	for _, rt := range g.routeTable() {
		if a, ok := want[rt.pattern]; ok {
			if rt.access != a {
				t.Errorf("%s: access %s, want %s", rt.pattern, rt.access, a)
			}
			delete(want, rt.pattern)
		}
	}
	for p := range want {
		t.Errorf("route %s missing from the route table", p)
	}
}

func TestCreateChannelValidation(t *testing.T) {
	h := newChannelHarness(t)
	tests := []struct {
		name   string
		token  string
		body   string
		status int
		code   string
		field  string
	}{
		{"no token", "", `{"type":"web","name":"Site"}`, 401, "invalid_token", ""},
		// Agents may read channels but not create them.
		{"agent", h.agent, `{"type":"web","name":"Site"}`, 403, "forbidden", ""},
		{"missing type", h.admin, `{"name":"Site"}`, 400, "invalid_channel_type", "type"},
		{"app type not yet", h.admin, `{"type":"app","name":"Site"}`, 400, "unsupported_channel_type", "type"},
		{"unknown type", h.admin, `{"type":"fax","name":"Site"}`, 400, "invalid_channel_type", "type"},
		{"empty name", h.admin, `{"type":"web","name":"  "}`, 400, "invalid_name", "name"},
		{"bad colour", h.admin, `{"type":"web","name":"Site","web":{"color":"blue"}}`, 400, "invalid_color", "web.color"},
		{"bad position", h.admin, `{"type":"web","name":"Site","web":{"position":"top"}}`, 400, "invalid_position", "web.position"},
		{"empty title", h.admin, `{"type":"web","name":"Site","web":{"title":""}}`, 400, "invalid_title", "web.title"},
		{"long greeting", h.admin, `{"type":"web","name":"Site","web":{"greeting":"` + strings.Repeat("a", 501) + `"}}`, 400, "invalid_greeting", "web.greeting"},
		{"negative auto-open", h.admin, `{"type":"web","name":"Site","web":{"triggers":{"auto_open_after_seconds":-1}}}`, 400, "invalid_auto_open", "web.triggers.auto_open_after_seconds"},
		{"pattern with space", h.admin, `{"type":"web","name":"Site","web":{"triggers":{"page_patterns":["/ok","/not ok"]}}}`, 400, "invalid_page_pattern", "web.triggers.page_patterns[1]"},
		{"no trigger at all", h.admin, `{"type":"web","name":"Site","web":{"triggers":{"click":false}}}`, 400, "no_trigger", "web.triggers"},
		{"unknown field", h.admin, `{"type":"web","name":"Site","colour":"#fff"}`, 400, "unknown_field", "colour"},
		{"wrong type of field", h.admin, `{"type":"web","name":"Site","web":{"triggers":{"click":"yes"}}}`, 400, "invalid_type", "web.triggers.click"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h.do(t, "POST", "/api/v1/channels", tc.token, tc.body)
			if status != tc.status || body["code"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
			if f, _ := body["field"].(string); f != tc.field {
				t.Fatalf("field = %q, want %q (%v)", f, tc.field, body)
			}
		})
	}
}

func TestChannelLifecycle(t *testing.T) {
	h := newChannelHarness(t)
	status, ch := h.do(t, "POST", "/api/v1/channels", h.admin, `{"type":"web","name":"Shop","web":{"color":"#FF5500","title":"Need help?","triggers":{"auto_open_after_seconds":20,"page_patterns":["/pricing*"]}}}`)
	if status != 201 {
		t.Fatalf("create: %d %v", status, ch)
	}
	id, key := ch["id"].(string), ch["key"].(string)
	if id == "" || !validChannelKey(key) || ch["type"] != "web" || ch["name"] != "Shop" {
		t.Fatalf("created channel = %v", ch)
	}
	web := ch["web"].(map[string]any)
	if web["color"] != "#ff5500" || web["position"] != "right" || web["title"] != "Need help?" || web["greeting"] != defaultWidgetGreeting {
		t.Fatalf("web settings = %v", web)
	}
	trig := web["triggers"].(map[string]any)
	if trig["click"] != true || trig["auto_open_after_seconds"] != float64(20) {
		t.Fatalf("triggers = %v", trig)
	}
	wantSnippet := `<script src="` + h.srv.URL + `/widget.js" data-channel="` + key + `" async></script>`
	if ch["embed_code"] != wantSnippet {
		t.Fatalf("embed_code = %v, want %s", ch["embed_code"], wantSnippet)
	}

	// A second channel gets its own key.
	_, other := h.do(t, "POST", "/api/v1/channels", h.admin, `{"type":"web","name":"Docs"}`)
	if other["key"] == key {
		t.Fatal("two channels share a key")
	}

	// Agents can list and read; the list is in creation order.
	status, list := h.do(t, "GET", "/api/v1/channels", h.agent, "")
	chans, _ := list["channels"].([]any)
	if status != 200 || len(chans) != 2 || chans[0].(map[string]any)["id"] != id {
		t.Fatalf("list = %d %v", status, list)
	}
	if status, got := h.do(t, "GET", "/api/v1/channels/"+id, h.agent, ""); status != 200 || got["key"] != key {
		t.Fatalf("get = %d %v", status, got)
	}
	if status, got := h.do(t, "GET", "/api/v1/channels/nope", h.admin, ""); status != 404 || got["code"] != "channel_not_found" {
		t.Fatalf("get missing = %d %v", status, got)
	}

	// PATCH changes only what it names and validates like create.
	status, got := h.do(t, "PATCH", "/api/v1/channels/"+id, h.admin, `{"name":"Shop EU","web":{"position":"left","triggers":{"page_patterns":[]}}}`)
	if status != 200 {
		t.Fatalf("patch: %d %v", status, got)
	}
	web = got["web"].(map[string]any)
	trig = web["triggers"].(map[string]any)
	if got["name"] != "Shop EU" || web["position"] != "left" || web["color"] != "#ff5500" || trig["auto_open_after_seconds"] != float64(20) || len(trig["page_patterns"].([]any)) != 0 {
		t.Fatalf("patched = %v", got)
	}
	patchTests := []struct {
		name, token, body string
		status            int
		code, field       string
	}{
		{"agent may not", h.agent, `{"name":"X"}`, 403, "forbidden", ""},
		{"type is fixed", h.admin, `{"type":"app"}`, 400, "channel_type_immutable", "type"},
		{"bad colour", h.admin, `{"web":{"color":"#12345"}}`, 400, "invalid_color", "web.color"},
		{"missing channel", h.admin, `{"name":"X"}`, 404, "channel_not_found", ""},
	}
	for _, tc := range patchTests {
		t.Run("patch "+tc.name, func(t *testing.T) {
			path := "/api/v1/channels/" + id
			if tc.code == "channel_not_found" {
				path = "/api/v1/channels/0190aaaa-0000-7000-8000-000000000000"
			}
			status, body := h.do(t, "PATCH", path, tc.token, tc.body)
			if status != tc.status || body["code"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
			if f, _ := body["field"].(string); f != tc.field {
				t.Fatalf("field = %q, want %q", f, tc.field)
			}
		})
	}

	// The widget reads its settings by key without a token, from any origin.
	req, _ := http.NewRequest("GET", h.srv.URL+"/api/v1/channels/by_key/"+key+"/widget", nil)
	req.Header.Set("Origin", "https://shop.example")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var wc widgetConfig
	_ = json.NewDecoder(res.Body).Decode(&wc)
	res.Body.Close()
	if res.StatusCode != 200 || wc.ChannelID != id || wc.Web.Position != "left" || wc.Name != "Shop EU" {
		t.Fatalf("widget config = %d %+v", res.StatusCode, wc)
	}
	if res.Header.Get("Access-Control-Allow-Origin") != "*" || res.Header.Get("Cache-Control") == "" {
		t.Fatalf("widget config headers = %v", res.Header)
	}
	for _, bad := range []string{"hdw_AAAAAAAAAAAAAAAAAAAAAAAA", "nonsense", strings.Repeat("x", 60)} {
		if status, body := h.do(t, "GET", "/api/v1/channels/by_key/"+bad+"/widget", "", ""); status != 404 || body["code"] != "channel_not_found" {
			t.Fatalf("widget config for %q = %d %v", bad, status, body)
		}
	}

	// Customer sessions name the channel by key; the session records its type.
	if got, err := h.g.resolveChannelKey(context.Background(), key); err != nil || got != "web" {
		t.Fatalf("resolveChannelKey = %q, %v", got, err)
	}
	if _, err := h.g.resolveChannelKey(context.Background(), "hdw_unknownunknownunknown1"); err == nil {
		t.Fatal("unknown key resolved")
	}
}

func TestCORSPreflight(t *testing.T) {
	h := newChannelHarness(t)
	req, _ := http.NewRequest("OPTIONS", h.srv.URL+"/api/v1/customer/sessions", nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 || res.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Authorization") || res.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight = %d %v", res.StatusCode, res.Header)
	}
}
