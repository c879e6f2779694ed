package platform_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/client"
	"github.com/helmdesk/helmdesk/services/platform"
)

func TestBulkImportIsAllOrNothing(t *testing.T) {
	o := newOrg(t, nil)
	ctx := context.Background()
	admin := o.users["admin"]
	countUsers := func() int {
		var out struct {
			Agents []client.User `json:"agents"`
		}
		if err := admin.Do(ctx, http.MethodGet, "/api/v1/agents", nil, &out); err != nil {
			t.Fatal(err)
		}
		return len(out.Agents)
	}
	before := countUsers()
	csvWithBadRow := "email,name,password,role,max_sessions,groups\n" +
		"i1@acme.test,Ivy,pass-word-1,agent,3,premium\n" +
		"not-an-email,Bad,pass-word-1,agent,3,\n" +
		"i3@acme.test,Ian,short,agent,3,\n"
	req, _ := http.NewRequest(http.MethodPost, o.dev.URL+"/api/v1/agents/import", strings.NewReader(csvWithBadRow))
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Authorization", "Bearer "+admin.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || countUsers() != before {
		t.Fatalf("bad import: status %d, users %d → %d; want 400 and nothing created", resp.StatusCode, before, countUsers())
	}
	var res struct {
		Created int `json:"created"`
		Results []struct {
			Row   int    `json:"row"`
			ID    string `json:"id"`
			Code  string `json:"code"`
			Error string `json:"error"`
		} `json:"results"`
	}
	good := "email,name,password,role,max_sessions,groups\ni1@acme.test,Ivy,pass-word-1,agent,3,premium\ni2@acme.test,Ike,pass-word-2,qa,,\n"
	req, _ = http.NewRequest(http.MethodPost, o.dev.URL+"/api/v1/agents/import", strings.NewReader(good))
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Authorization", "Bearer "+admin.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeBody(resp, &res); err != nil || resp.StatusCode != 201 || res.Created != 2 || res.Results[0].ID == "" {
		t.Fatalf("good import: %d %+v (%v)", resp.StatusCode, res, err)
	}
	// JSON works too, and duplicates inside one import are refused per row.
	err = admin.Do(ctx, http.MethodPost, "/api/v1/agents/import", []map[string]any{
		{"email": "j1@acme.test", "name": "J", "password": "pass-word-1"},
		{"email": "J1@acme.test", "name": "J", "password": "pass-word-1"},
	}, nil)
	if status, code := apiStatus(err); status != 400 || code != "invalid_import" {
		t.Fatalf("duplicate rows: %d %s", status, code)
	}
	// The imported agent signs in and is in the premium group.
	u := o.api.WithToken(r(o.api.Login(ctx, "i1@acme.test", "pass-word-1")).must(t))
	var me client.User
	if err := u.Do(ctx, http.MethodGet, "/api/v1/me", nil, &me); err != nil || me.MaxSessions != 3 || len(me.Groups) != 1 || me.Groups[0] != "premium" {
		t.Fatalf("imported agent = %+v (%v)", me, err)
	}
}

func TestAdminsListAndRevokeSignIns(t *testing.T) {
	o := newOrg(t, nil)
	ctx := context.Background()
	admin := o.users["admin"]
	var list struct {
		Sessions []struct {
			ID     string `json:"id"`
			UserID string `json:"user_id"`
			IP     string `json:"ip"`
		} `json:"sessions"`
	}
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/auth/sessions?user_id="+o.ids["qa"], nil, &list); err != nil || len(list.Sessions) != 1 || list.Sessions[0].IP == "" {
		t.Fatalf("qa sign-ins: %+v (%v)", list, err)
	}
	// In use (so cached, in the gateway and in Redis) when it is revoked.
	if err := o.users["qa"].Do(ctx, http.MethodGet, "/api/v1/me", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, http.MethodDelete, "/api/v1/auth/sessions/"+list.Sessions[0].ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	if status, _ := apiStatus(o.users["qa"].Do(ctx, http.MethodGet, "/api/v1/me", nil, nil)); status != 401 {
		t.Fatalf("revoked sign-in still works: %d", status)
	}
	if status, _ := apiStatus(admin.Do(ctx, http.MethodDelete, "/api/v1/auth/sessions/"+list.Sessions[0].ID, nil, nil)); status != 404 {
		t.Fatalf("revoking twice: %d, want 404", status)
	}
}

func TestIdleSignInsEnd(t *testing.T) {
	o := newOrg(t, func(c *platform.Config) { c.Gateway.UserIdleTimeout = 3 * time.Second })
	ctx := context.Background()
	qa := o.users["qa"]
	// Activity keeps the sign-in alive past the idle timeout…
	for range 4 {
		if err := qa.Do(ctx, http.MethodGet, "/api/v1/me", nil, nil); err != nil {
			t.Fatalf("active sign-in ended: %v", err)
		}
		time.Sleep(time.Second)
	}
	// …and silence ends it.
	time.Sleep(9 * time.Second)
	if status, code := apiStatus(qa.Do(ctx, http.MethodGet, "/api/v1/me", nil, nil)); status != 401 || code != "session_expired" {
		t.Fatalf("idle sign-in: %d %s, want 401 session_expired", status, code)
	}
}
