package platform_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/client"
	"github.com/helmdesk/helmdesk/services/platform"
	"github.com/helmdesk/helmdesk/services/platform/platformtest"
)

// chat is a platform with one online agent and one assigned customer, both connected.
type chat struct {
	api, admin, agentAPI *client.Client
	url, agentID         string
	start                client.SessionStart
	cust, agent          *client.Socket
}

func newChat(t *testing.T, tweak func(*platform.Config)) *chat {
	t.Helper()
	ctx := context.Background()
	dev := platformtest.Start(t, t.TempDir(), io.Discard, tweak)
	c := &chat{api: client.New(dev.URL), url: dev.URL}
	r(c.api.Setup(ctx, "Acme", adminEmail, adminPass, "Ada")).must(t)
	c.admin = c.api.WithToken(r(c.api.Login(ctx, adminEmail, adminPass)).must(t))
	c.agentID = r(c.admin.CreateAgent(ctx, client.NewAgent{Email: agentEmail, Password: agentPass, Name: "A", MaxSessions: 5})).must(t).ID
	c.agentAPI = c.api.WithToken(r(c.api.Login(ctx, agentEmail, agentPass)).must(t))
	r(c.agentAPI.SetStatus(ctx, c.agentID, "online")).must(t)
	c.agent = r(c.agentAPI.DialAgent(ctx, c.agentAPI.Token)).must(t)
	t.Cleanup(func() { _ = c.agent.CloseNow() })
	c.start = r(c.api.StartSession(ctx, client.StartSession{UserID: "cust-1"})).must(t)
	c.cust = r(c.api.DialCustomer(ctx, c.start.CustomerToken)).must(t)
	t.Cleanup(func() { _ = c.cust.CloseNow() })
	readUntil(t, c.cust, "greeting", isType("session"))
	readUntil(t, c.agent, "assignment", func(f client.Frame) bool { return f.Type == "session" && f.SessionID == c.start.SessionID })
	return c
}

func apiStatus(err error) (int, string) {
	var e *client.APIError
	if errors.As(err, &e) {
		return e.Status, e.Code
	}
	return 0, fmt.Sprint(err)
}

func TestIdempotentSends(t *testing.T) {
	c := newChat(t, nil)
	ctx := context.Background()
	// The same client_msg_id three times on one socket, then again on a new one.
	for range 3 {
		if err := c.cust.SendMessage(ctx, "", "same", "hello once"); err != nil {
			t.Fatal(err)
		}
	}
	var acks []int64
	for len(acks) < 3 {
		got := readUntil(t, c.cust, "ack", isType("ack"))
		acks = append(acks, got[len(got)-1].Seq)
	}
	_ = c.cust.CloseNow()
	again := r(c.api.DialCustomer(ctx, c.start.CustomerToken)).must(t)
	defer again.CloseNow()
	readUntil(t, again, "greeting", isType("session"))
	if err := again.Resume(ctx, "", 1); err != nil {
		t.Fatal(err)
	}
	readUntil(t, again, "resumed", isType("resumed"))
	if err := again.SendMessage(ctx, "", "same", "hello once"); err != nil {
		t.Fatal(err)
	}
	got := readUntil(t, again, "ack after reconnect", isType("ack"))
	acks = append(acks, got[len(got)-1].Seq)
	if fmt.Sprint(acks) != "[1 1 1 1]" {
		t.Fatalf("acks carried seqs %v, want the same seq 1 every time", acks)
	}
	// One message, stored once, delivered to the agent once.
	if err := again.SendMessage(ctx, "", "next", "second"); err != nil {
		t.Fatal(err)
	}
	frames := readUntil(t, c.agent, "second message", isMessage(2))
	n := 0
	for _, f := range frames {
		if f.Type == "message" && f.ClientMsgID == "same" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("agent received the repeated message %d times, want 1", n)
	}
	history := r(c.admin.AllMessages(ctx, c.start.SessionID, 0)).must(t)
	if len(history) != 2 {
		t.Fatalf("history has %d messages, want 2", len(history))
	}
}

func TestOrderIsTheSameOnBothSides(t *testing.T) {
	c := newChat(t, nil)
	ctx := context.Background()
	const each = 40
	errc := make(chan error, 2)
	go func() {
		for i := range each {
			if err := c.cust.SendMessage(ctx, "", fmt.Sprintf("c-%d", i), fmt.Sprint(i)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	go func() {
		for i := range each {
			if err := c.agent.SendMessage(ctx, c.start.SessionID, fmt.Sprintf("a-%d", i), fmt.Sprint(i)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	order := func(s *client.Socket) []string {
		var seen []string
		for _, f := range readUntil(t, s, "all messages", isMessage(2*each)) {
			if f.Type == "message" {
				seen = append(seen, fmt.Sprintf("%d:%s", f.Seq, f.ClientMsgID))
			}
		}
		return seen
	}
	custSeen, agentSeen := order(c.cust), order(c.agent)
	if len(custSeen) != 2*each || fmt.Sprint(custSeen) != fmt.Sprint(agentSeen) {
		t.Fatalf("customer saw %d messages, agent %d; orders differ:\n%v\n%v", len(custSeen), len(agentSeen), custSeen, agentSeen)
	}
	for i, s := range custSeen {
		var seq int
		fmt.Sscanf(s, "%d:", &seq)
		if seq != i+1 {
			t.Fatalf("seq %d at position %d: want 1, 2, 3, … without gaps", seq, i)
		}
	}
}

// customerAway has the customer send one message and lose their connection, the agent
// then reply n times, and returns the customer's new socket (not resumed yet, unless
// opts resume it as it opens).
func customerAway(t *testing.T, c *chat, replies int, opts ...client.DialOption) *client.Socket {
	t.Helper()
	ctx := context.Background()
	if err := c.cust.SendMessage(ctx, "", "c-1", "first"); err != nil {
		t.Fatal(err)
	}
	readUntil(t, c.cust, "own message", isMessage(1))
	_ = c.cust.CloseNow() // the customer's network drops
	for i := range replies {
		if err := c.agent.SendMessage(ctx, c.start.SessionID, fmt.Sprintf("a-%d", i), fmt.Sprint("reply ", i)); err != nil {
			t.Fatal(err)
		}
	}
	readUntil(t, c.agent, "last reply", isMessage(int64(1+replies)))
	cust := r(c.api.DialCustomer(ctx, c.start.CustomerToken, opts...)).must(t)
	t.Cleanup(func() { _ = cust.CloseNow() })
	return cust
}

// resumeSeqs reads up to the resumed frame and returns the seqs of the messages before it.
func resumeSeqs(t *testing.T, s *client.Socket) (seqs []int64, frames []client.Frame) {
	t.Helper()
	frames = readUntil(t, s, "resumed", isType("resumed"))
	for _, f := range frames {
		if f.Type == "message" {
			seqs = append(seqs, f.Seq)
		}
	}
	return seqs, frames
}

func TestResumeReplaysExactlyTheGap(t *testing.T) {
	c := newChat(t, nil)
	ctx := context.Background()
	cust := customerAway(t, c, 5)
	if err := cust.Resume(ctx, "", 1); err != nil {
		t.Fatal(err)
	}
	seqs, frames := resumeSeqs(t, cust)
	if fmt.Sprint(seqs) != "[2 3 4 5 6]" || frames[len(frames)-1].LastSeq != 6 || frames[len(frames)-1].History {
		t.Fatalf("resume replayed %v then %+v", seqs, frames[len(frames)-1])
	}
	// Live messages follow without a duplicate.
	if err := c.agent.SendMessage(ctx, c.start.SessionID, "a-live", "live"); err != nil {
		t.Fatal(err)
	}
	frames = readUntil(t, cust, "live message", isType("message"))
	if f := frames[len(frames)-1]; f.Seq != 7 {
		t.Fatalf("first live message after resume has seq %d, want 7", f.Seq)
	}
}

// awayThenLive has the customer miss 3 replies and reconnect (greeted, not resumed),
// then the agent send one more (seq 5).
func awayThenLive(t *testing.T) (*chat, *client.Socket) {
	t.Helper()
	c := newChat(t, nil)
	cust := customerAway(t, c, 3)
	readUntil(t, cust, "greeting", isType("session"))
	if err := c.agent.SendMessage(context.Background(), c.start.SessionID, "a-live", "live"); err != nil {
		t.Fatal(err)
	}
	return c, cust
}

// nextLiveIsOnly has the agent send one more message and checks that the customer's
// next message frame is that one, seq want, with nothing repeated before it.
func nextLiveIsOnly(t *testing.T, c *chat, cust *client.Socket, want int64) {
	t.Helper()
	if err := c.agent.SendMessage(context.Background(), c.start.SessionID, "a-next", "next"); err != nil {
		t.Fatal(err)
	}
	frames := readUntil(t, cust, "next live message", isType("message"))
	if f := frames[len(frames)-1]; f.Seq != want || len(frames) != 1 {
		t.Fatalf("after the resume got %d frames ending with seq %d, want only seq %d", len(frames), f.Seq, want)
	}
}

// A live message can reach a new socket before the client's resume does. The gateway
// holds it back until the resume, so the client gets the gap and then the live
// message, in order.
func TestLiveMessagesWaitForTheResume(t *testing.T) {
	c, cust := awayThenLive(t)
	// The agent's copy and the customer's go out together; give the customer's a
	// moment to reach its socket before the resume does.
	readUntil(t, c.agent, "live message", isMessage(5))
	time.Sleep(100 * time.Millisecond)
	if err := cust.Resume(context.Background(), "", 1); err != nil {
		t.Fatal(err)
	}
	seqs, frames := resumeSeqs(t, cust)
	if fmt.Sprint(seqs) != "[2 3 4 5]" || frames[len(frames)-1].LastSeq != 5 {
		t.Fatalf("got %v then %+v, want 2 3 4 5 then resumed at 5", seqs, frames[len(frames)-1])
	}
	nextLiveIsOnly(t, c, cust, 6)
}

// A client that does not resume gets live messages once the grace period after
// connecting is over; if it resumes later, the resume still replays what was sent
// while it was away rather than starting after the live message.
func TestResumeAfterALiveMessageStillReplaysTheGap(t *testing.T) {
	c, cust := awayThenLive(t)
	frames := readUntil(t, cust, "live message", isType("message"))
	if f := frames[len(frames)-1]; f.Seq != 5 {
		t.Fatalf("live message has seq %d, want 5", f.Seq)
	}
	if err := cust.Resume(context.Background(), "", 1); err != nil {
		t.Fatal(err)
	}
	seqs, frames := resumeSeqs(t, cust)
	if fmt.Sprint(seqs) != "[2 3 4]" || frames[len(frames)-1].LastSeq != 5 {
		t.Fatalf("resume replayed %v then %+v, want 2 3 4 then last_seq 5", seqs, frames[len(frames)-1])
	}
	// Live messages follow without a duplicate.
	nextLiveIsOnly(t, c, cust, 6)
}

// A client that already has every message resumes without a history read: the
// greeting read the session's last seq after the socket subscribed to its fan-out.
// A later resume of the same session on the same socket reads history again.
func TestResumeOfACurrentClientReadsNoHistory(t *testing.T) {
	c := newChat(t, nil)
	ctx := context.Background()
	cust := customerAway(t, c, 2) // the customer has seq 1 and misses 2 and 3
	if err := cust.CloseNow(); err != nil {
		t.Fatal(err)
	}
	cust = r(c.api.DialCustomer(ctx, c.start.CustomerToken)).must(t)
	t.Cleanup(func() { _ = cust.CloseNow() })
	readUntil(t, cust, "greeting", isType("session"))
	reads := historyCalls(t, c.url)
	if err := cust.Resume(ctx, "", 3); err != nil {
		t.Fatal(err)
	}
	seqs, frames := resumeSeqs(t, cust)
	if len(seqs) != 0 || frames[len(frames)-1].LastSeq != 3 {
		t.Fatalf("resume of a current client replayed %v then %+v, want nothing then last_seq 3", seqs, frames[len(frames)-1])
	}
	afterCurrentResume(t, c, cust, reads)
}

// afterCurrentResume checks a customer socket just resumed at seq 3 without a replay
// (it had 1 to 3): the resume read no history since reads, live messages follow
// (seq 4), and as the greeting's seq is stale now, resuming again from 1 reads history
// and replays 2 and 3 (the socket wrote 4 itself).
func afterCurrentResume(t *testing.T, c *chat, cust *client.Socket, reads int) {
	t.Helper()
	if n := historyCalls(t, c.url); n != reads {
		t.Fatalf("the resume read history %d times, want none", n-reads)
	}
	nextLiveIsOnly(t, c, cust, 4)
	if err := cust.Resume(context.Background(), "", 1); err != nil {
		t.Fatal(err)
	}
	if seqs, frames := resumeSeqs(t, cust); fmt.Sprint(seqs) != "[2 3]" || frames[len(frames)-1].LastSeq != 4 {
		t.Fatalf("second resume replayed %v then %+v, want 2 3 then last_seq 4", seqs, frames[len(frames)-1])
	}
}

// The same holds for a session without messages: last_seq 0 is known, not missing.
func TestResumeOfANewSessionReadsNoHistory(t *testing.T) {
	c := newChat(t, nil)
	reads := historyCalls(t, c.url)
	if err := c.cust.Resume(context.Background(), "", 0); err != nil {
		t.Fatal(err)
	}
	if seqs, frames := resumeSeqs(t, c.cust); len(seqs) != 0 || frames[len(frames)-1].LastSeq != 0 {
		t.Fatalf("resume of a new session replayed %v then %+v, want nothing then last_seq 0", seqs, frames[len(frames)-1])
	}
	if n := historyCalls(t, c.url); n != reads {
		t.Fatalf("the resume read history %d times, want none", n-reads)
	}
	nextLiveIsOnly(t, c, c.cust, 1)
}

// historyCalls is how many history reads the gateway has asked of the session service.
func historyCalls(t *testing.T, url string) int {
	t.Helper()
	n := 0
	for _, line := range metricLines(t, url) {
		if strings.HasPrefix(line, "helmdesk_grpc_client_duration_seconds_count{") && strings.Contains(line, "/ListMessages\"") {
			v, err := strconv.Atoi(line[strings.LastIndexByte(line, ' ')+1:])
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			n += v
		}
	}
	return n
}

// metricLines returns the lines of the gateway's /metrics.
func metricLines(t *testing.T, url string) []string {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(body), "\n")
}

func TestResumeWithAHugeGapPointsToHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 1,100 messages")
	}
	c := newChat(t, nil)
	ctx := context.Background()
	_ = c.cust.CloseNow()
	const n = 1100
	for i := range n {
		if err := c.agent.SendMessage(ctx, c.start.SessionID, fmt.Sprintf("a-%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	readUntil(t, c.agent, "last message", isMessage(n))
	cust := r(c.api.DialCustomer(ctx, c.start.CustomerToken)).must(t)
	defer cust.CloseNow()
	if err := cust.Resume(ctx, "", 0); err != nil {
		t.Fatal(err)
	}
	frames := readUntil(t, cust, "resumed", isType("resumed"))
	last := frames[len(frames)-1]
	if !last.History || last.LastSeq != 1000 {
		t.Fatalf("resumed = %+v, want history=true after 1000 replayed", last)
	}
	// The client fetches the rest over REST, then resumes from there.
	rest := r(c.api.WithToken(c.start.CustomerToken).AllMessages(ctx, c.start.SessionID, last.LastSeq)).must(t)
	if len(rest) != n-1000 || rest[0].Seq != 1001 {
		t.Fatalf("history after %d: %d messages from %d", last.LastSeq, len(rest), rest[0].Seq)
	}
	if err := cust.Resume(ctx, "", int64(n)); err != nil {
		t.Fatal(err)
	}
	frames = readUntil(t, cust, "resumed", isType("resumed"))
	if f := frames[len(frames)-1]; f.History || f.LastSeq != n {
		t.Fatalf("second resume = %+v", f)
	}
}

func TestTypingAndReadReceipts(t *testing.T) {
	c := newChat(t, nil)
	ctx := context.Background()
	if err := c.cust.Send(ctx, map[string]string{"type": "typing", "state": "start"}); err != nil {
		t.Fatal(err)
	}
	f := readUntil(t, c.agent, "typing", isType("typing"))
	if got := f[len(f)-1]; got.SessionID != c.start.SessionID || got.Sender.Type != "customer" {
		t.Fatalf("typing frame = %+v", got)
	}
	if err := c.cust.SendMessage(ctx, "", "c-1", "hi"); err != nil {
		t.Fatal(err)
	}
	readUntil(t, c.agent, "message", isMessage(1))
	if err := c.agent.Send(ctx, map[string]any{"type": "read", "session_id": c.start.SessionID, "seq": 1}); err != nil {
		t.Fatal(err)
	}
	f = readUntil(t, c.cust, "read receipt", isType("read"))
	if got := f[len(f)-1]; got.Sender.Type != "agent" || got.Sender.ID != c.agentID {
		t.Fatalf("read frame = %+v", got)
	}
	if err := c.cust.Send(ctx, map[string]string{"type": "typing", "state": "dancing"}); err != nil {
		t.Fatal(err)
	}
	if f := readUntil(t, c.cust, "error", isType("error")); f[len(f)-1].Code != "invalid_state" {
		t.Fatalf("bad typing state: %+v", f[len(f)-1])
	}
}

func TestCloseRequestsRatingAndFreesTheAgent(t *testing.T) {
	c := newChat(t, nil)
	ctx := context.Background()
	cust := c.api.WithToken(c.start.CustomerToken)
	// Rating an open conversation is refused.
	if status, code := apiStatus(cust.Do(ctx, http.MethodPost, "/api/v1/sessions/"+c.start.SessionID+"/csat", map[string]any{"score": 5}, nil)); status != 409 || code != "session_not_closed" {
		t.Fatalf("csat before close: %d %s", status, code)
	}
	var closed client.Session
	if err := c.agentAPI.Do(ctx, http.MethodPost, "/api/v1/sessions/"+c.start.SessionID+"/close", map[string]string{}, &closed); err != nil {
		t.Fatal(err)
	}
	if closed.Status != "closed" {
		t.Fatalf("closed session = %+v", closed)
	}
	// The customer gets the closed status with a rating request, and a system message
	// (in either order: the message takes the inbound path, the status does not).
	var closedFrame, sysMsg *client.Frame
	readUntil(t, c.cust, "closed frame and system message", func(f client.Frame) bool {
		switch {
		case f.Type == "session" && f.Status == "closed":
			closedFrame = &f
		case f.Type == "message" && f.Sender.Type == "system":
			sysMsg = &f
		}
		return closedFrame != nil && sysMsg != nil
	})
	if !closedFrame.CSATRequested {
		t.Fatalf("closed frame without a rating request: %+v", closedFrame)
	}
	if sysMsg.Seq != 1 || sysMsg.Text == "" {
		t.Fatalf("system message = %+v", sysMsg)
	}
	if st := r(c.admin.OnlineStatus(ctx, c.agentID)).must(t); st.CurrentSessionCount != 0 {
		t.Fatalf("agent still holds %d sessions after close", st.CurrentSessionCount)
	}
	// Closing again is a conflict; writing to a closed session is refused.
	if status, code := apiStatus(c.agentAPI.Do(ctx, http.MethodPost, "/api/v1/sessions/"+c.start.SessionID+"/close", map[string]string{}, nil)); status != 409 || code != "session_closed" {
		t.Fatalf("second close: %d %s", status, code)
	}
	if err := c.cust.SendMessage(ctx, "", "late", "are you there?"); err != nil {
		t.Fatal(err)
	}
	if f := readUntil(t, c.cust, "error", isType("error")); f[len(f)-1].Code != "session_closed" {
		t.Fatalf("send after close: %+v", f[len(f)-1])
	}
	// CSAT: bad score, then once, then never again.
	for _, tc := range []struct {
		body   map[string]any
		status int
		code   string
	}{
		{map[string]any{"score": 6}, 400, "invalid_score"},
		{map[string]any{"score": 0}, 400, "invalid_score"},
		{map[string]any{"comment": "no score"}, 400, "invalid_score"},
		{map[string]any{"score": "five"}, 400, "invalid_type"},
	} {
		if status, code := apiStatus(cust.Do(ctx, http.MethodPost, "/api/v1/sessions/"+c.start.SessionID+"/csat", tc.body, nil)); status != tc.status || code != tc.code {
			t.Fatalf("csat %v: %d %s, want %d %s", tc.body, status, code, tc.status, tc.code)
		}
	}
	if status, code := apiStatus(c.agentAPI.Do(ctx, http.MethodPost, "/api/v1/sessions/"+c.start.SessionID+"/csat", map[string]any{"score": 5}, nil)); status != 403 {
		t.Fatalf("agent rating the chat: %d %s, want 403", status, code)
	}
	var csat map[string]any
	if err := cust.Do(ctx, http.MethodPost, "/api/v1/sessions/"+c.start.SessionID+"/csat", map[string]any{"score": 5, "comment": "great"}, &csat); err != nil {
		t.Fatal(err)
	}
	if csat["score"] != float64(5) || csat["comment"] != "great" {
		t.Fatalf("csat = %v", csat)
	}
	if status, code := apiStatus(cust.Do(ctx, http.MethodPost, "/api/v1/sessions/"+c.start.SessionID+"/csat", map[string]any{"score": 4}, nil)); status != 409 || code != "csat_already_submitted" {
		t.Fatalf("second csat: %d %s", status, code)
	}
	var sess map[string]any
	if err := c.admin.Do(ctx, http.MethodGet, "/api/v1/sessions/"+c.start.SessionID, nil, &sess); err != nil {
		t.Fatal(err)
	}
	if sess["closed_by"] != "agent" || sess["csat"].(map[string]any)["score"] != float64(5) {
		t.Fatalf("session after rating = %v", sess)
	}
}

func TestCustomerCanEndTheChat(t *testing.T) {
	c := newChat(t, nil)
	ctx := context.Background()
	cust := c.api.WithToken(c.start.CustomerToken)
	if err := cust.Do(ctx, http.MethodPost, "/api/v1/sessions/"+c.start.SessionID+"/close", nil, nil); err != nil {
		t.Fatal(err)
	}
	f := readUntil(t, c.agent, "closed at the agent", func(f client.Frame) bool { return f.Type == "session" && f.Status == "closed" })
	if f[len(f)-1].SessionID != c.start.SessionID {
		t.Fatalf("frame = %+v", f[len(f)-1])
	}
	// Another customer cannot close or rate someone else's session.
	other := r(c.api.StartSession(ctx, client.StartSession{UserID: "cust-2"})).must(t)
	if status, _ := apiStatus(c.api.WithToken(other.CustomerToken).Do(ctx, http.MethodPost, "/api/v1/sessions/"+c.start.SessionID+"/csat", map[string]any{"score": 1}, nil)); status != 404 {
		t.Fatalf("rating someone else's session: %d, want 404", status)
	}
}

func TestTransferToAnotherAgent(t *testing.T) {
	c := newChat(t, nil)
	ctx := context.Background()
	bID := r(c.admin.CreateAgent(ctx, client.NewAgent{Email: "b@acme.test", Password: agentPass, Name: "B", MaxSessions: 2})).must(t).ID
	b := c.api.WithToken(r(c.api.Login(ctx, "b@acme.test", agentPass)).must(t))
	r(b.SetStatus(ctx, bID, "online")).must(t)
	bSock := r(b.DialAgent(ctx, b.Token)).must(t)
	defer bSock.CloseNow()
	if err := c.cust.SendMessage(ctx, "", "c-1", "I need billing"); err != nil {
		t.Fatal(err)
	}
	readUntil(t, c.agent, "message", isMessage(1))

	// Only the assigned agent (or a supervisor/admin) may transfer.
	if status, _ := apiStatus(b.Do(ctx, http.MethodPost, "/api/v1/sessions/"+c.start.SessionID+"/transfer", map[string]string{"agent_id": bID}, nil)); status != 404 {
		t.Fatalf("unassigned agent transferring: %d, want 404", status)
	}
	if status, code := apiStatus(c.agentAPI.Do(ctx, http.MethodPost, "/api/v1/sessions/"+c.start.SessionID+"/transfer", map[string]string{}, nil)); status != 400 || code != "invalid_transfer_target" {
		t.Fatalf("transfer without target: %d %s", status, code)
	}
	var moved client.Session
	if err := c.agentAPI.Do(ctx, http.MethodPost, "/api/v1/sessions/"+c.start.SessionID+"/transfer", map[string]string{"agent_id": bID, "note": "billing question"}, &moved); err != nil {
		t.Fatal(err)
	}
	if moved.AgentID != bID || moved.Status != "assigned" {
		t.Fatalf("transferred session = %+v", moved)
	}
	// B is told and gets the conversation so far; the customer sees the new agent.
	got := readUntil(t, bSock, "history at the new agent", isMessage(1))
	if got[len(got)-1].Text != "I need billing" {
		t.Fatalf("new agent got %+v", got[len(got)-1])
	}
	readUntil(t, c.cust, "new agent", func(f client.Frame) bool { return f.Type == "session" && f.AgentID == bID })
	// A loses access.
	readUntil(t, c.agent, "transfer away", func(f client.Frame) bool { return f.Type == "session" && f.AgentID == bID })
	if err := c.agent.SendMessage(ctx, c.start.SessionID, "a-late", "still me"); err != nil {
		t.Fatal(err)
	}
	if f := readUntil(t, c.agent, "error", isType("error")); f[len(f)-1].Code != "forbidden_session" {
		t.Fatalf("old agent writing after transfer: %+v", f[len(f)-1])
	}
	if st := r(c.admin.OnlineStatus(ctx, c.agentID)).must(t); st.CurrentSessionCount != 0 {
		t.Fatalf("old agent still holds %d sessions", st.CurrentSessionCount)
	}
	// A can still read the conversation they served (assigned before), B can write.
	if _, err := c.agentAPI.AllMessages(ctx, c.start.SessionID, 0); err == nil {
		t.Log("old agent may read the transcript")
	}
	if err := bSock.SendMessage(ctx, c.start.SessionID, "b-1", "Hi, billing here"); err != nil {
		t.Fatal(err)
	}
	readUntil(t, c.cust, "reply from the new agent", func(f client.Frame) bool { return f.Type == "message" && f.Sender.ID == bID })
}

func TestIdleSessionsClose(t *testing.T) {
	c := newChat(t, func(cfg *platform.Config) { cfg.Session.IdleTimeout = 2 * time.Second })
	readUntil(t, c.cust, "idle close", func(f client.Frame) bool { return f.Type == "session" && f.Status == "closed" })
	sess := r(c.admin.GetSession(context.Background(), c.start.SessionID)).must(t)
	if sess.Status != "closed" {
		t.Fatalf("session = %+v", sess)
	}
}

func TestEarlierSessionsOfTheCustomer(t *testing.T) {
	c := newChat(t, nil)
	ctx := context.Background()
	if err := c.agentAPI.Do(ctx, http.MethodPost, "/api/v1/sessions/"+c.start.SessionID+"/close", nil, nil); err != nil {
		t.Fatal(err)
	}
	second := r(c.api.StartSession(ctx, client.StartSession{UserID: "cust-1"})).must(t)
	if second.AgentID != c.agentID {
		t.Fatalf("returning customer assigned to %q", second.AgentID)
	}
	var out struct {
		Sessions []client.Session `json:"sessions"`
	}
	if err := c.agentAPI.Do(ctx, http.MethodGet, "/api/v1/sessions/"+second.SessionID+"/customer_sessions", nil, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Sessions) != 1 || out.Sessions[0].ID != c.start.SessionID || out.Sessions[0].Status != "closed" {
		t.Fatalf("earlier sessions = %+v", out.Sessions)
	}
	// Session listing filters and pages.
	var page struct {
		Sessions   []client.Session `json:"sessions"`
		NextCursor string           `json:"next_cursor"`
	}
	if err := c.admin.Do(ctx, http.MethodGet, "/api/v1/sessions?limit=1", nil, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Sessions) != 1 || page.Sessions[0].ID != second.SessionID || page.NextCursor == "" {
		t.Fatalf("first page = %+v", page)
	}
	if err := c.admin.Do(ctx, http.MethodGet, "/api/v1/sessions?limit=1&cursor="+page.NextCursor, nil, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Sessions) != 1 || page.Sessions[0].ID != c.start.SessionID || page.NextCursor != "" {
		t.Fatalf("second page = %+v", page)
	}
	if err := c.admin.Do(ctx, http.MethodGet, "/api/v1/sessions?status=closed&user_id=cust-1", nil, &page); err != nil || len(page.Sessions) != 1 {
		t.Fatalf("status filter: %+v %v", page, err)
	}
}
