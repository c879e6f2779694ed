package platform_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/crypto/argon2"

	"github.com/helmdesk/helmdesk/pkg/auth"
	"github.com/helmdesk/helmdesk/pkg/client"
	"github.com/helmdesk/helmdesk/pkg/tlsconfig"
	"github.com/helmdesk/helmdesk/services/gateway"
	"github.com/helmdesk/helmdesk/services/platform"
	"github.com/helmdesk/helmdesk/services/platform/platformtest"
)

// org is a platform with one user of every role, two customers and an API key.
type org struct {
	dev                                    *platformtest.Dev
	api                                    *client.Client
	users                                  map[string]*client.Client // by role
	ids                                    map[string]string         // user id by role
	agentB                                 *client.Client
	agentBID                               string
	s1, s2                                 client.SessionStart // s1 assigned to the agent, s2 queued
	customerID, channelID, channelKey, key string
	keyID                                  string
}

func newOrg(t *testing.T, tweak func(*platform.Config)) *org {
	t.Helper()
	ctx := context.Background()
	dev := platformtest.Start(t, t.TempDir(), io.Discard, tweak)
	o := &org{dev: dev, api: client.New(dev.URL), users: map[string]*client.Client{}, ids: map[string]string{}}
	r(o.api.Setup(ctx, "Acme", adminEmail, adminPass, "Ada")).must(t)
	admin := o.api.WithToken(r(o.api.Login(ctx, adminEmail, adminPass)).must(t))
	o.users["admin"] = admin
	var me client.User
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/me", nil, &me); err != nil {
		t.Fatal(err)
	}
	o.ids["admin"] = me.ID
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/groups", map[string]string{"name": "premium"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"supervisor", "agent", "qa"} {
		email := role + "@acme.test"
		u := r(admin.CreateAgent(ctx, client.NewAgent{Email: email, Password: agentPass, Name: role, Role: role, MaxSessions: 1, Groups: []string{"premium"}})).must(t)
		o.ids[role] = u.ID
		o.users[role] = o.api.WithToken(r(o.api.Login(ctx, email, agentPass)).must(t))
	}
	b := r(admin.CreateAgent(ctx, client.NewAgent{Email: "b@acme.test", Password: agentPass, Name: "B", MaxSessions: 1})).must(t)
	o.agentBID = b.ID
	o.agentB = o.api.WithToken(r(o.api.Login(ctx, "b@acme.test", agentPass)).must(t))
	r(o.users["agent"].SetStatus(ctx, o.ids["agent"], "online")).must(t)
	o.s1 = r(o.api.StartSession(ctx, client.StartSession{UserID: "c1", Profile: map[string]any{"phone": "+86 138-0013-8000", "email": "Carol@Example.com", "user_level": "VIP"}})).must(t)
	if o.s1.AgentID != o.ids["agent"] {
		t.Fatalf("s1 = %+v", o.s1)
	}
	o.s2 = r(o.api.StartSession(ctx, client.StartSession{UserID: "c2"})).must(t)
	sess := r(admin.GetSession(ctx, o.s1.SessionID)).must(t)
	o.customerID = sess.CustomerID
	var ch struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/channels", map[string]any{"type": "web", "name": "Site"}, &ch); err != nil {
		t.Fatal(err)
	}
	o.channelID, o.channelKey = ch.ID, ch.Key
	var key struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/api_keys", map[string]string{"name": "crm", "role": "agent"}, &key); err != nil {
		t.Fatal(err)
	}
	o.keyID, o.key = key.ID, key.Key
	return o
}

// TestPermissionMatrix walks the route table: every route × every role, with the
// roles' permissions as the expectation. A denied call must be 401/403 and carry no
// data; an allowed one must get past authorisation.
func TestPermissionMatrix(t *testing.T) {
	o := newOrg(t, nil)
	ctx := context.Background()
	perms := gateway.RolePermissions()
	fill := func(path string) string {
		switch {
		case strings.HasPrefix(path, "/api/v1/agents/{id}"):
			path = strings.Replace(path, "{id}", o.ids["agent"], 1)
		case strings.HasPrefix(path, "/api/v1/api_keys/{id}"):
			path = strings.Replace(path, "{id}", "01a1fe00-0000-7000-8000-000000000000", 1) // not the live key
		case strings.HasPrefix(path, "/api/v1/channels/{id}"):
			path = strings.Replace(path, "{id}", o.channelID, 1)
		case strings.HasPrefix(path, "/api/v1/customers/{id}"):
			path = strings.Replace(path, "{id}", "no-such-customer", 1)
		case strings.HasPrefix(path, "/api/v1/auth/sessions/{id}"):
			path = strings.Replace(path, "{id}", "no-such-sign-in", 1)
		}
		path = strings.Replace(path, "{id}", o.s1.SessionID, 1)
		return strings.Replace(path, "{key}", o.channelKey, 1)
	}
	callers := map[string]*client.Client{
		"anonymous": o.api, "customer": o.api.WithToken(o.s1.CustomerToken), "api_key(agent)": o.api.WithToken(o.key),
	}
	for role, c := range o.users {
		callers[role] = c
	}
	checked := 0
	for _, rt := range gateway.Routes() {
		if strings.HasSuffix(rt.Path, "/ws") || rt.Requires == "public" || rt.Path == "/api/v1/auth/logout" {
			continue
		}
		path := fill(rt.Path)
		if rt.Path == "/api/v1/customers" {
			path += "?phone=123"
		}
		for who, c := range callers {
			var body any
			if rt.Method != http.MethodGet && rt.Method != http.MethodDelete {
				body = map[string]any{}
			}
			err := c.Do(ctx, rt.Method, path, body, nil)
			var apiErr *client.APIError
			status, code := 200, ""
			if errors.As(err, &apiErr) {
				status, code = apiErr.Status, apiErr.Code
			} else if err != nil {
				t.Fatalf("%s %s as %s: %v", rt.Method, path, who, err)
			}
			denied := status == 401 || (status == 403 && (code == "forbidden" || code == "customer_token_required"))
			var want bool // allowed?
			switch who {
			case "anonymous":
				want = false
			case "customer":
				want = rt.Requires == "signed_in_or_customer" || rt.Requires == "customer"
			default:
				role := strings.TrimSuffix(strings.TrimPrefix(who, "api_key("), ")")
				switch rt.Requires {
				case "signed_in", "signed_in_or_customer":
					want = true
				case "customer":
					want = false
				default:
					want = slices.Contains(perms[role], rt.Requires)
				}
			}
			if (rt.Requires == "signed_in" || rt.Requires == "signed_in_or_customer") && want {
				// Object-level checks inside the handler may still refuse; only the
				// authentication gate is under test here.
				denied = status == 401
			}
			if want == denied {
				t.Errorf("%s %s as %s (requires %s): got %d %s, want allowed=%v", rt.Method, rt.Path, who, rt.Requires, status, code, want)
			}
			if who == "anonymous" && status != 401 {
				t.Errorf("%s %s anonymously: %d, want 401", rt.Method, rt.Path, status)
			}
			checked++
		}
	}
	if checked < 200 {
		t.Fatalf("only %d route × caller checks ran", checked)
	}
}

func TestNoAccessToOtherPeoplesConversations(t *testing.T) {
	o := newOrg(t, nil)
	ctx := context.Background()
	s1 := "/api/v1/sessions/" + o.s1.SessionID
	otherCustomer := o.api.WithToken(o.s2.CustomerToken)
	for _, tc := range []struct {
		who    string
		c      *client.Client
		method string
		path   string
		body   any
	}{
		{"another agent", o.agentB, "GET", s1, nil},
		{"another agent", o.agentB, "GET", s1 + "/messages", nil},
		{"another agent", o.agentB, "GET", s1 + "/customer_sessions", nil},
		{"another agent", o.agentB, "POST", s1 + "/close", map[string]any{}},
		{"another agent", o.agentB, "POST", s1 + "/transfer", map[string]any{"agent_id": o.agentBID}},
		{"another customer", otherCustomer, "GET", s1, nil},
		{"another customer", otherCustomer, "GET", s1 + "/messages", nil},
		{"another customer", otherCustomer, "POST", s1 + "/close", map[string]any{}},
		{"another customer", otherCustomer, "POST", s1 + "/csat", map[string]any{"score": 1}},
		{"supervisor of another group", o.users["supervisor"], "GET", "/api/v1/sessions/" + o.s2.SessionID, nil},
	} {
		err := tc.c.Do(ctx, tc.method, tc.path, tc.body, nil)
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || (apiErr.Status != 404 && apiErr.Status != 403) {
			t.Errorf("%s: %s %s = %v, want 404/403 and no data", tc.who, tc.method, tc.path, err)
		}
	}
	// The agent's listing holds only their own conversations.
	var list struct {
		Sessions []client.Session `json:"sessions"`
	}
	if err := o.agentB.Do(ctx, http.MethodGet, "/api/v1/sessions", nil, &list); err != nil || len(list.Sessions) != 0 {
		t.Fatalf("agent B lists %d sessions (%v), want none", len(list.Sessions), err)
	}
	// Over the socket: frames naming someone else's session are refused.
	sock := r(o.agentB.DialAgent(ctx, o.agentB.Token)).must(t)
	defer sock.CloseNow()
	for _, frame := range []string{
		`{"type":"message","session_id":"` + o.s1.SessionID + `","client_msg_id":"x","text":"hi"}`,
		`{"type":"resume","session_id":"` + o.s1.SessionID + `","last_seq":0}`,
		`{"type":"typing","session_id":"` + o.s1.SessionID + `","state":"start"}`,
	} {
		if err := sock.SendRaw(ctx, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		got := readUntil(t, sock, "error", isType("error"))
		if e := got[len(got)-1]; e.Code != "forbidden_session" {
			t.Fatalf("frame %s: %+v", frame, e)
		}
		for _, f := range got {
			if f.Type == "message" {
				t.Fatalf("agent B received a message of a foreign session: %+v", f)
			}
		}
	}
	cust := r(o.api.DialCustomer(ctx, o.s2.CustomerToken)).must(t)
	defer cust.CloseNow()
	if err := cust.SendRaw(ctx, []byte(`{"type":"resume","session_id":"`+o.s1.SessionID+`","last_seq":0}`)); err != nil {
		t.Fatal(err)
	}
	if got := readUntil(t, cust, "error", isType("error")); got[len(got)-1].Code != "forbidden_session" {
		t.Fatalf("customer resume of a foreign session: %+v", got[len(got)-1])
	}
}

func TestLockoutAfterFailedSignIns(t *testing.T) {
	o := newOrg(t, nil)
	ctx := context.Background()
	for i := range 5 {
		if _, err := o.api.Login(ctx, "qa@acme.test", "wrong-pass-1"); err == nil {
			t.Fatalf("attempt %d: wrong password accepted", i)
		}
	}
	_, err := o.api.Login(ctx, "qa@acme.test", agentPass)
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 429 || apiErr.Code != "account_locked" {
		t.Fatalf("correct password on a locked account: %v, want 429 account_locked", err)
	}
	// Other accounts are unaffected.
	r(o.api.Login(ctx, "agent@acme.test", agentPass)).must(t)
	// Failures are audited.
	var page struct {
		Entries []map[string]any `json:"entries"`
	}
	if err := o.users["admin"].Do(ctx, http.MethodGet, "/api/v1/audit_logs?action=auth.login_failed", nil, &page); err != nil || len(page.Entries) != 5 {
		t.Fatalf("audited failures: %d (%v), want 5", len(page.Entries), err)
	}
}

func TestTokensExpire(t *testing.T) {
	o := newOrg(t, func(c *platform.Config) { c.Gateway.UserTokenTTL = 2 * time.Second })
	ctx := context.Background()
	tok := r(o.api.Login(ctx, "qa@acme.test", agentPass)).must(t)
	c := o.api.WithToken(tok)
	if err := c.Do(ctx, http.MethodGet, "/api/v1/me", nil, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second) // past the lifetime and the 5 s cache
	if status, code := apiStatus(c.Do(ctx, http.MethodGet, "/api/v1/me", nil, nil)); status != 401 || code != "invalid_token" {
		t.Fatalf("expired token: %d %s", status, code)
	}
}

func TestRevocationClosesLiveSockets(t *testing.T) {
	o := newOrg(t, nil)
	ctx := context.Background()
	sock := r(o.users["agent"].DialAgent(ctx, o.users["agent"].Token)).must(t)
	defer sock.CloseNow()
	readUntil(t, sock, "greeting", isType("session"))
	start := time.Now()
	if err := o.users["admin"].Do(ctx, http.MethodPatch, "/api/v1/agents/"+o.ids["agent"], map[string]any{"disabled": true}, nil); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		if _, err := sock.Read(rctx); err != nil {
			if code := client.CloseStatus(err); code != 1008 {
				t.Fatalf("socket ended with %v (close %d), want 1008 policy violation", err, code)
			}
			break
		}
	}
	t.Logf("socket closed %v after the agent was disabled", time.Since(start).Round(time.Millisecond))
	if status, _ := apiStatus(o.users["agent"].Do(ctx, http.MethodGet, "/api/v1/me", nil, nil)); status != 401 {
		t.Fatalf("disabled agent's token still works: %d", status)
	}
	if _, err := o.api.Login(ctx, "agent@acme.test", agentPass); err == nil {
		t.Fatal("disabled agent could sign in")
	}
	// Signing out ends that token at once.
	qa := o.users["qa"]
	if err := qa.Do(ctx, http.MethodPost, "/api/v1/auth/logout", nil, nil); err != nil {
		t.Fatal(err)
	}
	if status, _ := apiStatus(qa.Do(ctx, http.MethodGet, "/api/v1/me", nil, nil)); status != 401 {
		t.Fatalf("token works after sign-out: %d", status)
	}
	// An agent cannot raise their own rights.
	if status, code := apiStatus(o.agentB.Do(ctx, http.MethodPatch, "/api/v1/agents/"+o.agentBID, map[string]any{"role": "admin"}, nil)); status != 403 || code != "forbidden_field" {
		t.Fatalf("agent changing own role: %d %s", status, code)
	}
	if status, code := apiStatus(o.agentB.Do(ctx, http.MethodPatch, "/api/v1/agents/"+o.agentBID, map[string]any{"max_sessions": 50}, nil)); status != 403 || code != "forbidden_field" {
		t.Fatalf("agent changing own capacity: %d %s", status, code)
	}
}

func mongoDB(t *testing.T, o *org) *mongo.Database {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(o.dev.MongoURI))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database("helmdesk")
}

// dumpAll returns every document of every collection as extended JSON.
func dumpAll(t *testing.T, db *mongo.Database) string {
	t.Helper()
	ctx := context.Background()
	names, err := db.ListCollectionNames(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, n := range names {
		cur, err := db.Collection(n).Find(ctx, bson.M{})
		if err != nil {
			t.Fatal(err)
		}
		for cur.Next(ctx) {
			b.WriteString(cur.Current.String())
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func TestAPIKeysAreStoredHashed(t *testing.T) {
	o := newOrg(t, nil)
	ctx := context.Background()
	keyClient := o.api.WithToken(o.key)
	if err := keyClient.Do(ctx, http.MethodGet, "/api/v1/sessions", nil, nil); err != nil {
		t.Fatalf("api key as bearer: %v", err)
	}
	if dump := dumpAll(t, mongoDB(t, o)); strings.Contains(dump, o.key) || strings.Contains(dump, o.key[4:]) {
		t.Fatal("the plain API key is in the database")
	}
	var keys struct {
		APIKeys []map[string]any `json:"api_keys"`
	}
	if err := o.users["admin"].Do(ctx, http.MethodGet, "/api/v1/api_keys", nil, &keys); err != nil || len(keys.APIKeys) != 1 || keys.APIKeys[0]["last_used_at"] == nil {
		t.Fatalf("listed keys: %+v (%v)", keys, err)
	}
	if _, ok := keys.APIKeys[0]["key"]; ok {
		t.Fatal("listing shows the key")
	}
	// A key cannot be made with more rights than its creator has.
	if status, code := apiStatus(o.users["supervisor"].Do(ctx, http.MethodPost, "/api/v1/api_keys", map[string]string{"name": "x", "role": "admin"}, nil)); status != 403 {
		t.Fatalf("supervisor minting an admin key: %d %s", status, code)
	}
	if err := o.users["admin"].Do(ctx, http.MethodDelete, "/api/v1/api_keys/"+o.keyID, nil, nil); err != nil {
		t.Fatal(err)
	}
	if status, _ := apiStatus(keyClient.Do(ctx, http.MethodGet, "/api/v1/sessions", nil, nil)); status != 401 {
		t.Fatalf("revoked key still works: %d", status)
	}
}

func TestAuditTrailAndTamperDetection(t *testing.T) {
	o := newOrg(t, nil)
	ctx := context.Background()
	admin := o.users["admin"]
	must0 := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must0(admin.Do(ctx, http.MethodPatch, "/api/v1/agents/"+o.agentBID, map[string]any{"max_sessions": 3, "role": "supervisor"}, nil))
	must0(admin.Do(ctx, http.MethodPut, "/api/v1/routing/rules", map[string]any{"routing_rules": []map[string]string{{"condition": "user_level == 'VIP'", "action": "assign_to_group('premium')"}}}, nil))
	must0(admin.Do(ctx, http.MethodPost, "/api/v1/roles", map[string]any{"name": "auditor", "permissions": []string{"audit.read"}}, nil))
	_ = o.users["agent"].Do(ctx, http.MethodGet, "/api/v1/audit_logs", nil, nil) // denied
	resp, err := http.Get(o.dev.URL + "/api/v1/audit_logs/export")
	must0(err)
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, o.dev.URL+"/api/v1/audit_logs/export?format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+admin.Token)
	resp, err = http.DefaultClient.Do(req)
	must0(err)
	export, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(export), "agent.create") {
		t.Fatalf("export: %d %.200s", resp.StatusCode, export)
	}
	must0(admin.Do(ctx, http.MethodDelete, "/api/v1/customers/"+o.customerID, nil, nil))
	for _, action := range []string{"setup.complete", "agent.create", "group.create", "channel.create", "api_key.create", "auth.login", "agent.role_change",
		"routing.rules_update", "role.create", "authz.denied", "audit.export", "customer.erase"} {
		var page struct {
			Entries []map[string]any `json:"entries"`
		}
		must0(admin.Do(ctx, http.MethodGet, "/api/v1/audit_logs?action="+action, nil, &page))
		if len(page.Entries) == 0 {
			t.Errorf("no audit entry for %s", action)
			continue
		}
		e := page.Entries[0]
		if e["time"] == nil || e["actor"] == nil || e["hash"] == nil || e["source_ip"] == "" {
			t.Errorf("%s entry lacks fields: %v", action, e)
		}
	}
	var rc map[string]any
	must0(admin.Do(ctx, http.MethodGet, "/api/v1/audit_logs?action=agent.role_change", nil, &rc))
	change := rc["entries"].([]any)[0].(map[string]any)
	if change["before"].(map[string]any)["role"] != "agent" || change["after"].(map[string]any)["role"] != "supervisor" {
		t.Fatalf("role change before/after: %v / %v", change["before"], change["after"])
	}
	var v map[string]any
	must0(admin.Do(ctx, http.MethodGet, "/api/v1/audit_logs/verify", nil, &v))
	if v["ok"] != true {
		t.Fatalf("untouched chain does not verify: %v", v)
	}
	// Someone edits an entry directly in MongoDB: verification names it.
	db := mongoDB(t, o)
	coll := db.Collection("audit_log")
	res, err := coll.UpdateOne(ctx, bson.M{"id": change["id"]}, bson.M{"$set": bson.M{"after.role": "agent"}})
	if err != nil || res.ModifiedCount != 1 {
		t.Fatalf("tamper: %v %+v", err, res)
	}
	must0(admin.Do(ctx, http.MethodGet, "/api/v1/audit_logs/verify", nil, &v))
	brk, _ := v["break"].(map[string]any)
	if v["ok"] != false || brk == nil || fmt.Sprint(brk["seq"]) != fmt.Sprint(change["seq"]) {
		t.Fatalf("tampered chain: %v, want a break at seq %v", v, change["seq"])
	}
}

func TestSensitiveFieldsEncryptedAtRest(t *testing.T) {
	o := newOrg(t, nil)
	ctx := context.Background()
	admin := o.users["admin"]
	dump := dumpAll(t, mongoDB(t, o))
	for _, raw := range []string{"138-0013-8000", "8613800138000", "13800138000", "Carol@Example.com", "carol@example.com"} {
		if strings.Contains(dump, raw) {
			t.Fatalf("%q is stored in clear", raw)
		}
	}
	// The agent still sees them.
	sess := r(o.users["agent"].GetSession(ctx, o.s1.SessionID)).must(t)
	if sess.Profile["phone"] != "+86 138-0013-8000" || sess.Profile["email"] != "Carol@Example.com" || sess.Profile["user_level"] != "VIP" {
		t.Fatalf("decrypted profile = %v", sess.Profile)
	}
	// Exact lookup by phone, however it is written.
	var found struct {
		Customers []map[string]any `json:"customers"`
	}
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/customers?phone=%2B8613800138000", nil, &found); err != nil || len(found.Customers) != 1 || found.Customers[0]["id"] != o.customerID {
		t.Fatalf("lookup by phone: %+v (%v)", found, err)
	}
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/customers?email=carol@example.com", nil, &found); err != nil || len(found.Customers) != 1 {
		t.Fatalf("lookup by email: %+v (%v)", found, err)
	}
	// A tampered ciphertext is an error, never garbage.
	db := mongoDB(t, o)
	var doc struct {
		Sensitive map[string]string `bson:"sensitive"`
	}
	if err := db.Collection("sessions").FindOne(ctx, bson.M{"_id": o.s1.SessionID}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	ct := doc.Sensitive["phone"]
	flipped := ct[:len(ct)-2] + map[bool]string{true: "A", false: "B"}[ct[len(ct)-2] != 'A'] + ct[len(ct)-1:]
	if _, err := db.Collection("sessions").UpdateOne(ctx, bson.M{"_id": o.s1.SessionID}, bson.M{"$set": bson.M{"sensitive.phone": flipped}}); err != nil {
		t.Fatal(err)
	}
	if status, _ := apiStatus(admin.Do(ctx, http.MethodGet, "/api/v1/sessions/"+o.s1.SessionID, nil, nil)); status != 500 {
		t.Fatalf("tampered ciphertext: status %d, want 500", status)
	}
	// Erasure forgets the customer.
	var erased map[string]any
	if err := admin.Do(ctx, http.MethodDelete, "/api/v1/customers/"+o.customerID, nil, &erased); err != nil || erased["sessions_scrubbed"] != float64(1) {
		t.Fatalf("erase: %v (%v)", erased, err)
	}
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/customers?phone=%2B8613800138000", nil, &found); err != nil || len(found.Customers) != 0 {
		t.Fatalf("lookup after erasure: %+v (%v)", found, err)
	}
}

func TestHTTPSRefusesOldTLS(t *testing.T) {
	certFile, keyFile, err := tlsconfig.SelfSigned(nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dev := platformtest.Start(t, t.TempDir(), io.Discard, func(c *platform.Config) { c.TLSCert, c.TLSKey = certFile, keyFile })
	if !strings.HasPrefix(dev.URL, "https://") {
		t.Fatalf("URL %s is not https", dev.URL)
	}
	addr := strings.TrimPrefix(dev.URL, "https://")
	for _, tc := range []struct {
		name     string
		min, max uint16
		ok       bool
	}{
		{"TLS 1.1", tls.VersionTLS10, tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, true},
	} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tc.min, MaxVersion: tc.max}) //nolint:gosec // testing what the server refuses
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err == nil {
			if tc.max == tls.VersionTLS13 && conn.ConnectionState().Version != tls.VersionTLS13 {
				t.Errorf("negotiated %x, want TLS 1.3", conn.ConnectionState().Version)
			}
			conn.Close()
		}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed test certificate
	resp, err := hc.Get(dev.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("https healthz: %v", err)
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("default negotiation is not TLS 1.3: %+v", resp.TLS)
	}
}

// A password hash made with older parameters is upgraded at the next successful
// sign-in, and the password keeps working.
func TestSignInUpgradesOldPasswordHashes(t *testing.T) {
	o := newOrg(t, nil)
	ctx := context.Background()
	users := mongoDB(t, o).Collection("users")
	// The agents' password hashed with OWASP's 19 MiB / 2 passes.
	salt := []byte("somesaltsomesalt")
	old := "$argon2id$v=19$m=19456,t=2,p=1$" + base64.RawStdEncoding.EncodeToString(salt) + "$" +
		base64.RawStdEncoding.EncodeToString(argon2.IDKey([]byte(agentPass), salt, 2, 19456, 1, 32))
	if _, err := users.UpdateOne(ctx, bson.M{"_id": o.ids["qa"]}, bson.M{"$set": bson.M{"password_hash": old}}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.api.Login(ctx, "qa@acme.test", "wrong-pass-1"); err == nil {
		t.Fatal("wrong password accepted against an old hash")
	}
	stored := func() string {
		var u struct {
			Hash string `bson:"password_hash"`
		}
		if err := users.FindOne(ctx, bson.M{"_id": o.ids["qa"]}).Decode(&u); err != nil {
			t.Fatal(err)
		}
		return u.Hash
	}
	if stored() != old {
		t.Fatal("a failed sign-in changed the stored hash")
	}
	r(o.api.Login(ctx, "qa@acme.test", agentPass)).must(t)
	upgraded := stored()
	if upgraded == old || auth.NeedsRehash(upgraded) {
		t.Fatalf("hash after sign-in = %q, want one with the current parameters", upgraded)
	}
	r(o.api.Login(ctx, "qa@acme.test", agentPass)).must(t)
	if stored() != upgraded {
		t.Fatal("a current hash was rehashed again")
	}
}
