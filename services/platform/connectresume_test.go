package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/helmdesk/helmdesk/pkg/client"
)

// A customer can carry its resume in the upgrade request: the greeting is followed by
// the replay and the resumed frame without a resume frame being sent.
func TestCustomerResumesInTheUpgradeRequest(t *testing.T) {
	c := newChat(t, nil)
	cust := customerAway(t, c, 5, client.ResumeFrom(1))
	seqs, frames := resumeSeqs(t, cust)
	if frames[0].Type != "session" || fmt.Sprint(seqs) != "[2 3 4 5 6]" || frames[len(frames)-1].LastSeq != 6 || frames[len(frames)-1].History {
		t.Fatalf("upgrade resume gave %+v, want the session frame, 2 3 4 5 6, then resumed at 6", frames)
	}
	// Live messages follow without a duplicate.
	nextLiveIsOnly(t, c, cust, 7)
}

// A customer that was up to date gets its session frame and its resumed frame and
// nothing else, with no history read; a later resume frame on the socket still works.
func TestUpgradeResumeOfACurrentCustomerReadsNoHistory(t *testing.T) {
	c := newChat(t, nil)
	ctx := context.Background()
	_ = customerAway(t, c, 2).CloseNow() // seq 1 is the customer's own; 2 and 3 the agent's
	reads := historyCalls(t, c.url)
	cust := r(c.api.DialCustomer(ctx, c.start.CustomerToken, client.ResumeFrom(3))).must(t)
	t.Cleanup(func() { _ = cust.CloseNow() })
	frames := readUntil(t, cust, "resumed", isType("resumed"))
	if len(frames) != 2 || frames[0].Type != "session" || frames[1].LastSeq != 3 {
		t.Fatalf("upgrade resume of a current customer gave %+v, want the session frame then resumed at 3", frames)
	}
	afterCurrentResume(t, c, cust, reads)
}

// An agent resumes each session in the upgrade request. Its own sessions are replayed
// with the greeting; a session that is not the agent's gets the same error frame a
// resume frame would, and the socket stays open.
func TestAgentResumesItsSessionsInTheUpgradeRequest(t *testing.T) {
	c := newChat(t, nil)
	ctx := context.Background()
	if err := c.cust.SendMessage(ctx, "", "c-1", "one"); err != nil {
		t.Fatal(err)
	}
	readUntil(t, c.agent, "first message", isMessage(1))
	_ = c.agent.CloseNow() // the agent's network drops
	for _, id := range []string{"c-2", "c-3"} {
		if err := c.cust.SendMessage(ctx, "", id, id); err != nil {
			t.Fatal(err)
		}
	}
	readUntil(t, c.cust, "own message", isMessage(3))
	const foreign = "0000000000000000000000000f"
	agent := r(c.agentAPI.DialAgent(ctx, c.agentAPI.Token, client.ResumeSession(c.start.SessionID, 1), client.ResumeSession(foreign, 0))).must(t)
	t.Cleanup(func() { _ = agent.CloseNow() })
	seqs, frames := resumeSeqs(t, agent)
	if frames[0].Type != "session" || frames[0].SessionID != c.start.SessionID || fmt.Sprint(seqs) != "[2 3]" {
		t.Fatalf("agent's upgrade resume gave %+v, want its session frame, then 2 3", frames)
	}
	if f := frames[len(frames)-1]; f.SessionID != c.start.SessionID || f.LastSeq != 3 {
		t.Fatalf("resumed = %+v, want session %s at 3", f, c.start.SessionID)
	}
	frames = readUntil(t, agent, "error about the foreign session", isType("error"))
	if f := frames[len(frames)-1]; f.Code != "forbidden_session" || f.SessionID != foreign {
		t.Fatalf("foreign session's resume gave %+v, want forbidden_session", f)
	}
	if err := c.cust.SendMessage(ctx, "", "c-4", "four"); err != nil {
		t.Fatal(err)
	}
	if frames := readUntil(t, agent, "live message", isType("message")); len(frames) != 1 || frames[0].Seq != 4 {
		t.Fatalf("after the resumes got %+v, want only seq 4", frames)
	}
}

// Resumes in the upgrade request are checked before anything else: a malformed one is
// refused with 400 and a code that names it, and no socket is opened.
func TestUpgradeResumesAreChecked(t *testing.T) {
	c := newChat(t, nil)
	many := strings.Repeat("&resume=s:1", 501)[1:]
	for _, tc := range []struct{ path, code string }{
		{"/api/v1/customer/ws?last_seq=-1", "invalid_last_seq"},
		{"/api/v1/customer/ws?last_seq=two", "invalid_last_seq"},
		{"/api/v1/customer/ws?last_seq=", "invalid_last_seq"},
		{"/api/v1/customer/ws?last_seq=99999999999999999999", "invalid_last_seq"},
		{"/api/v1/customer/ws?last_seq=1&last_seq=2", "invalid_last_seq"},
		{"/api/v1/customer/ws?resume=" + c.start.SessionID + ":1", "invalid_resume"},
		{"/api/v1/agent/ws?last_seq=1", "invalid_last_seq"},
		{"/api/v1/agent/ws?resume=" + c.start.SessionID, "invalid_resume"},
		{"/api/v1/agent/ws?resume=:4", "invalid_resume"},
		{"/api/v1/agent/ws?resume=" + strings.Repeat("s", 65) + ":1", "invalid_resume"},
		{"/api/v1/agent/ws?resume=" + c.start.SessionID + ":x", "invalid_last_seq"},
		{"/api/v1/agent/ws?resume=" + c.start.SessionID + ":1&resume=" + c.start.SessionID + ":2", "invalid_resume"},
		{"/api/v1/agent/ws?" + many, "invalid_resume"},
	} {
		token := c.start.CustomerToken
		if strings.HasPrefix(tc.path, "/api/v1/agent/") {
			token = c.agentAPI.Token
		}
		req, err := http.NewRequest(http.MethodGet, c.url+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Code, Message string }
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest || err != nil || body.Code != tc.code || body.Message == "" {
			t.Errorf("%.80s: %d %+v (%v), want 400 %s", tc.path, res.StatusCode, body, err, tc.code)
		}
	}
	// The customer's socket, and the agent's, still open with a valid resume.
	ctx := context.Background()
	cust := r(c.api.DialCustomer(ctx, c.start.CustomerToken, client.ResumeFrom(0))).must(t)
	defer cust.CloseNow()
	readUntil(t, cust, "resumed", isType("resumed"))
	agent := r(c.agentAPI.DialAgent(ctx, c.agentAPI.Token, client.ResumeSession(c.start.SessionID, 0))).must(t)
	defer agent.CloseNow()
	readUntil(t, agent, "resumed", isType("resumed"))
}
