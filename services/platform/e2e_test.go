package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/client"
	"github.com/helmdesk/helmdesk/services/platform/platformtest"
)

const (
	adminEmail = "admin@acme.test"
	adminPass  = "s3cret-admin"
	agentEmail = "ada@acme.test"
	agentPass  = "s3cret-agent"
)

// readUntil reads frames until match returns true, failing on timeout. Frames that do
// not match are returned too, in order, for assertions on what came before.
func readUntil(t *testing.T, s *client.Socket, what string, match func(client.Frame) bool) []client.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var got []client.Frame
	for {
		f, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v (frames so far: %+v)", what, err, got)
		}
		got = append(got, f)
		if match(f) {
			return got
		}
	}
}

func isType(typ string) func(client.Frame) bool {
	return func(f client.Frame) bool { return f.Type == typ }
}

func isMessage(seq int64) func(client.Frame) bool {
	return func(f client.Frame) bool { return f.Type == "message" && f.Seq == seq }
}

// result lets a (value, error) call be checked inline: r(f()).must(t).
type result[T any] struct {
	v   T
	err error
}

func r[T any](v T, err error) result[T] { return result[T]{v, err} }

func (x result[T]) mustB(b *testing.B) T {
	b.Helper()
	if x.err != nil {
		b.Fatal(x.err)
	}
	return x.v
}

func (x result[T]) must(t *testing.T) T {
	t.Helper()
	if x.err != nil {
		t.Fatal(x.err)
	}
	return x.v
}

// TestFirstChatEndToEnd drives the whole platform only over HTTP and WebSocket: setup,
// an agent, a customer, a conversation both ways, a restart, intact history.
func TestFirstChatEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dataDir := t.TempDir()
	ctx := context.Background()
	dev := platformtest.Start(t, dataDir, io.Discard, nil)
	api := client.New(dev.URL)

	setup := r(api.Setup(ctx, "Acme", adminEmail, adminPass, "Ada Admin")).must(t)
	if setup.Admin.Role != "admin" || setup.Token == "" {
		t.Fatalf("setup = %+v", setup)
	}
	var apiErr *client.APIError
	if _, err := api.Setup(ctx, "Again", "x@acme.test", adminPass, "X"); !errors.As(err, &apiErr) || apiErr.Status != 409 || apiErr.Code != "setup_already_done" {
		t.Fatalf("second setup: %v, want 409 setup_already_done", err)
	}
	admin := api.WithToken(r(api.Login(ctx, adminEmail, adminPass)).must(t))
	agentUser := r(admin.CreateAgent(ctx, client.NewAgent{Email: agentEmail, Password: agentPass, Name: "Agent Ada", MaxSessions: 3})).must(t)
	if agentUser.ID == "" || agentUser.Role != "agent" || agentUser.MaxSessions != 3 {
		t.Fatalf("created agent = %+v", agentUser)
	}

	agent := api.WithToken(r(api.Login(ctx, agentEmail, agentPass)).must(t))
	agentSock := r(agent.DialAgent(ctx, agent.Token)).must(t)
	defer agentSock.CloseNow()
	state := r(agent.SetStatus(ctx, agentUser.ID, "online")).must(t)
	if state.Status != "online" || state.CurrentSessionCount != 0 {
		t.Fatalf("status = %+v", state)
	}

	start := r(api.StartSession(ctx, client.StartSession{UserID: "cust-1", Profile: map[string]any{"name": "Carol", "user_level": "VIP"}, PageURL: "https://shop.example/cart"})).must(t)
	if start.SessionID == "" || start.CustomerToken == "" || start.Status != "assigned" || start.AgentID != agentUser.ID {
		t.Fatalf("start session = %+v, want assigned to %s", start, agentUser.ID)
	}
	if st := r(admin.OnlineStatus(ctx, agentUser.ID)).must(t); st.CurrentSessionCount != 1 {
		t.Fatalf("online status after assignment = %+v", st)
	}

	custSock := r(api.DialCustomer(ctx, start.CustomerToken)).must(t)
	defer custSock.CloseNow()
	greet := readUntil(t, custSock, "session frame", isType("session"))
	if g := greet[len(greet)-1]; g.Status != "assigned" || g.AgentID != agentUser.ID {
		t.Fatalf("customer greeting = %+v", g)
	}
	readUntil(t, agentSock, "assignment frame", func(f client.Frame) bool {
		return f.Type == "session" && f.SessionID == start.SessionID && f.Status == "assigned"
	})

	// Customer → agent.
	if err := custSock.SendMessage(ctx, "", "c-1", "Hello, my order is late"); err != nil {
		t.Fatal(err)
	}
	frames := readUntil(t, custSock, "ack", isType("ack"))
	if frames[len(frames)-1].ClientMsgID != "c-1" {
		t.Fatalf("ack = %+v", frames[len(frames)-1])
	}
	got := readUntil(t, agentSock, "customer message", isMessage(1))
	m := got[len(got)-1]
	if m.Text != "Hello, my order is late" || m.Sender.Type != "customer" || m.ClientMsgID != "c-1" || m.SessionID != start.SessionID {
		t.Fatalf("agent got %+v", m)
	}
	// Agent → customer.
	if err := agentSock.SendMessage(ctx, start.SessionID, "a-1", "Sorry! Let me check."); err != nil {
		t.Fatal(err)
	}
	readUntil(t, agentSock, "agent ack", isType("ack"))
	got = readUntil(t, custSock, "agent reply", isMessage(2))
	if r := got[len(got)-1]; r.Text != "Sorry! Let me check." || r.Sender.Type != "agent" || r.Sender.ID != agentUser.ID {
		t.Fatalf("customer got %+v", r)
	}

	// Stop everything and start again on the same data folder.
	_ = custSock.CloseNow()
	_ = agentSock.CloseNow()
	dev.Stop(t)
	dev = platformtest.Start(t, dataDir, io.Discard, nil)
	api = client.New(dev.URL)
	admin = api.WithToken(r(api.Login(ctx, adminEmail, adminPass)).must(t))
	history := r(admin.AllMessages(ctx, start.SessionID, 0)).must(t)
	if len(history) != 2 || history[0].Seq != 1 || history[0].Text != "Hello, my order is late" || history[1].Seq != 2 || history[1].Sender.Type != "agent" {
		t.Fatalf("history after restart = %+v", history)
	}
	sess := r(admin.GetSession(ctx, start.SessionID)).must(t)
	if sess.Status != "assigned" || sess.AgentID != agentUser.ID || sess.LastSeq != 2 {
		t.Fatalf("session after restart = %+v", sess)
	}

	// The customer reconnects with the same token and carries on: seq continues at 3.
	custSock = r(api.DialCustomer(ctx, start.CustomerToken)).must(t)
	defer custSock.CloseNow()
	if err := custSock.Resume(ctx, "", 1); err != nil {
		t.Fatal(err)
	}
	got = readUntil(t, custSock, "resumed", isType("resumed"))
	var replayed []int64
	for _, f := range got {
		if f.Type == "message" {
			replayed = append(replayed, f.Seq)
		}
	}
	if fmt.Sprint(replayed) != "[2]" || got[len(got)-1].LastSeq != 2 {
		t.Fatalf("resume replayed %v then %+v", replayed, got[len(got)-1])
	}
	if err := custSock.SendMessage(ctx, "", "c-2", "Any news?"); err != nil {
		t.Fatal(err)
	}
	got = readUntil(t, custSock, "own message echoed", isMessage(3))
	if !strings.Contains(got[len(got)-1].Text, "news") {
		t.Fatalf("got %+v", got[len(got)-1])
	}
}

func decodeBody(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
