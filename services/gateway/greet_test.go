package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"

	"github.com/helmdesk/helmdesk/pkg/frames"
	"github.com/helmdesk/helmdesk/pkg/groupcommit"
	sessionv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/session/v1"
	"github.com/helmdesk/helmdesk/services/session"
)

// summaryService answers GetSessionSummaries for every id but "gone", and holds its
// first answer until release is closed.
type summaryService struct {
	sessionv1.SessionServiceClient // any other method panics

	release chan struct{}
	mu      sync.Mutex
	calls   [][]string
}

func (f *summaryService) GetSessionSummaries(_ context.Context, req *sessionv1.GetSessionSummariesRequest, _ ...grpc.CallOption) (*sessionv1.GetSessionSummariesResponse, error) {
	f.mu.Lock()
	f.calls = append(f.calls, req.GetSessionIds())
	first := len(f.calls) == 1
	f.mu.Unlock()
	if first {
		<-f.release
	}
	res := &sessionv1.GetSessionSummariesResponse{}
	for _, id := range req.GetSessionIds() {
		if id != "gone" {
			res.Sessions = append(res.Sessions, &sessionv1.Session{Id: id, Status: sessionv1.Status_STATUS_ASSIGNED, AgentId: "agent-of-" + id, LastSeq: 7, LastSeqKnown: true})
		}
	}
	return res, nil
}

func (f *summaryService) called() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// The sockets greeted while a read is under way share the next one, and each gets
// its own session (or an error when it is gone).
func TestGreetingsOfABurstShareOneRead(t *testing.T) {
	svc := &summaryService{release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	g := &Gateway{sessions: svc, metrics: &metrics{wsErrors: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: "errors"}, []string{"code"})}}
	g.greetings = &groupcommit.Group[string, *sessionv1.Session]{Write: g.readSummaries, Max: session.MaxSummaries}

	ids := []string{"s0", "s1", "gone", "s2"}
	type greeted struct {
		id    string
		frame map[string]any
	}
	out := make(chan greeted, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		s, client := socketPair(t, 64)
		s.g, s.p = g, Principal{Kind: tokenCustomer, SessionID: id}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.greet()
			_, b, err := client.Read(t.Context())
			if err != nil {
				t.Error(err)
				return
			}
			var f map[string]any
			if err := json.Unmarshal(b, &f); err != nil {
				t.Error(err)
			}
			out <- greeted{id, f}
		}()
		// s0's read is under way (and held); the others queue behind it.
		for deadline := time.Now().Add(5 * time.Second); goroutinesIn("groupcommit.(*Group[...]).Do") != i+1 || svc.called() != 1; {
			if time.Now().After(deadline) {
				t.Fatalf("greeting %d never queued", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	close(svc.release)
	wg.Wait()
	close(out)

	if len(svc.calls) != 2 || !slices.Equal(svc.calls[0], []string{"s0"}) || len(svc.calls[1]) != 3 {
		t.Fatalf("reads %v, want [s0] then the other three together", svc.calls)
	}
	for got := range out {
		f := got.frame
		if got.id == "gone" {
			if f["type"] != "error" || f["code"] != "session_not_found" || f["session_id"] != "gone" {
				t.Fatalf("greeting of a session that is gone: %v", f)
			}
			continue
		}
		if f["type"] != "session" || f["session_id"] != got.id || f["status"] != "assigned" || f["agent_id"] != "agent-of-"+got.id {
			t.Fatalf("greeting of %s: %v", got.id, f)
		}
	}
}

// agentSessionsService lists one assigned session for the agent, as it stood before
// its third message; it tells called when the read starts and answers once answer is
// closed, so that the socket, already subscribed, can receive the third message while
// the greeting reads a snapshot from before it.
type agentSessionsService struct {
	sessionv1.SessionServiceClient // any other method panics

	called chan struct{}
	answer chan struct{}
}

func (f *agentSessionsService) ListSessions(_ context.Context, req *sessionv1.ListSessionsRequest, _ ...grpc.CallOption) (*sessionv1.ListSessionsResponse, error) {
	close(f.called)
	<-f.answer
	return &sessionv1.ListSessionsResponse{Sessions: []*sessionv1.Session{
		{Id: "s1", Status: sessionv1.Status_STATUS_ASSIGNED, AgentId: req.GetAgentId(), LastSeq: 2, LastSeqKnown: true},
	}}, nil
}

// A message the fan-out delivers while an agent's socket is being greeted is written
// once the greeting has said which sessions are the agent's: after the greeting, and
// after the resume of its session. Dropped as "not this agent's session" instead, it
// would be lost to the agent, since the greeting's read came before it and the resume
// trusts that read.
func TestMessageDeliveredDuringTheGreetingReachesTheAgent(t *testing.T) {
	svc := &agentSessionsService{called: make(chan struct{}), answer: make(chan struct{})}
	reg := prometheus.NewRegistry()
	f := promauto.With(reg)
	s, client := socketPair(t, 64)
	s.g = &Gateway{sessions: svc, metrics: &metrics{
		wsErrors:        f.NewCounterVec(prometheus.CounterOpts{Name: "errors"}, []string{"code"}),
		resumes:         f.NewCounterVec(prometheus.CounterOpts{Name: "resumes"}, []string{"path"}),
		messagesOut:     f.NewCounterVec(prometheus.CounterOpts{Name: "out"}, []string{"recipient"}),
		deliveryLatency: f.NewHistogramVec(prometheus.HistogramOpts{Name: "latency"}, []string{"recipient"}),
	}}
	s.agent, s.p = true, Principal{Kind: tokenUser, UserID: "agent-1"}
	s.opening, s.holdUntil = true, time.Now().Add(resumeGrace) // as serveSocket opens it

	greeted := make(chan struct{})
	go func() {
		defer close(greeted)
		s.greet()
	}()
	<-svc.called
	live, err := frames.Encode(time.Now(), frames.Message{Type: frames.TypeMessage, SessionID: "s1", Seq: 3, ClientMsgID: "c-3",
		Sender: frames.Sender{Type: frames.SenderCustomer, ID: "customer-1"}, Text: "third"})
	if err != nil {
		t.Fatal(err)
	}
	s.deliver(frames.AgentChannel("agent-1"), live)
	close(svc.answer)
	<-greeted
	last := int64(2)
	s.handleResume(frames.Client{Type: frames.TypeResume, SessionID: "s1", LastSeq: &last})

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var got []string
	for _, want := range []string{"session s1 0", "resumed s1 2", "message s1 3"} {
		_, b, err := client.Read(ctx)
		if err != nil {
			t.Fatalf("frames %v, then %v; want %s next", got, err, want)
		}
		var f struct {
			Type      string `json:"type"`
			SessionID string `json:"session_id"`
			Seq       int64  `json:"seq"`
			LastSeq   int64  `json:"last_seq"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s %d", f.Type, f.SessionID, f.Seq+f.LastSeq))
		if got[len(got)-1] != want {
			t.Fatalf("frames %v; want %s next", got, want)
		}
	}
}
