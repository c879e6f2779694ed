package session

import (
	"context"
	"testing"
	"time"
)

func (f *fixture) summary(t *testing.T, sid string) (Session, bool) {
	t.Helper()
	got, err := f.svc.state.summaries(context.Background(), []string{sid})
	if err != nil {
		t.Fatal(err)
	}
	sess, ok := got[sid]
	return sess, ok
}

func TestSummaryFollowsTheSession(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.newSession(t, "s1", "")
	if s, ok := f.summary(t, "s1"); !ok || s.Status != StatusQueued || s.AgentID != "" || s.CSAT != nil {
		t.Fatalf("new session: %+v %v", s, ok)
	}
	if _, err := f.svc.applyAssignment(ctx, nil, "s1", "a1", "sales", time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	if s, ok := f.summary(t, "s1"); !ok || s.Status != StatusAssigned || s.AgentID != "a1" || s.Group != "sales" {
		t.Fatalf("assigned: %+v", s)
	}
	// Transferred to a queue, as the transfer does it.
	if err := f.svc.repo.setQueued(ctx, "s1", "billing"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.state.setAgent(ctx, "s1", "", "billing", StatusQueued); err != nil {
		t.Fatal(err)
	}
	if s, _ := f.summary(t, "s1"); s.Status != StatusQueued || s.AgentID != "" || s.Group != "billing" {
		t.Fatalf("queued: %+v", s)
	}
	if _, err := f.svc.applyAssignment(ctx, nil, "s1", "a2", "billing", time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.repo.close(ctx, "s1", "agent:a2", "done", time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.state.setAgent(ctx, "s1", "a2", "billing", StatusClosed); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.SessionSummary(ctx, "s1")
	if err != nil || got.Status != StatusClosed || got.AgentID != "a2" || got.CSAT != nil {
		t.Fatalf("closed: %+v %v", got, err)
	}
	// Rated: the csat claim is what marks it.
	if ok, err := f.svc.state.claim(ctx, "s1", "csat"); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if got, err := f.svc.SessionSummary(ctx, "s1"); err != nil || got.CSAT == nil {
		t.Fatalf("rated: %+v %v", got, err)
	}
}

func TestSummaryFallsBackToMongoDB(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.newSession(t, "s1", "a1")
	// No state at all (expired, or Redis lost it).
	if err := f.svc.state.drop(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.summary(t, "s1"); ok {
		t.Fatal("a summary without state")
	}
	got, err := f.svc.SessionSummary(ctx, "s1")
	if err != nil || got.Status != StatusAssigned || got.AgentID != "a1" || got.CustomerID != "c-s1" {
		t.Fatalf("from MongoDB: %+v %v", got, err)
	}
	// State written before it kept the group is not trusted for a summary.
	f.newSessionState(t, "s1")
	if err := f.rdb.HDel(ctx, stateKey("s1"), "group").Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.summary(t, "s1"); ok {
		t.Fatal("a summary from state without a group")
	}
	if _, err := f.svc.SessionSummary(ctx, "nope"); err == nil {
		t.Fatal("a summary of a session that does not exist")
	}
}

func TestAgentListSummaryReadsState(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.newSession(t, "s1", "a1")
	f.newSession(t, "s2", "a1")
	f.assignedList(t, "a1") // builds the index (from MongoDB)
	// The state says s1 went to the "vip" group; MongoDB was not told (so the list can
	// only show it by reading the state).
	if err := f.rdb.HSet(ctx, stateKey("s1"), "group", "vip").Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.state.drop(ctx, "s2"); err != nil { // s2 from MongoDB
		t.Fatal(err)
	}
	list, _, err := f.svc.ListSessions(ctx, sessionFilter{AgentID: "a1", Status: StatusAssigned, Limit: 10, Summary: true})
	if err != nil || len(list) != 2 {
		t.Fatalf("list %+v %v", list, err)
	}
	if list[0].ID != "s2" || list[0].CustomerID != "c-s2" || list[1].ID != "s1" || list[1].Group != "vip" {
		t.Fatalf("list %+v", list)
	}
	full, _, err := f.svc.ListSessions(ctx, sessionFilter{AgentID: "a1", Status: StatusAssigned, Limit: 10})
	if err != nil || len(full) != 2 || full[1].Group != "" || full[1].CustomerID != "c-s1" {
		t.Fatalf("full list %+v %v", full, err)
	}
}

func TestSummariesOfManySessions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.newSession(t, "s1", "a1")
	f.newSession(t, "s2", "a3")
	f.newSession(t, "s3", "a2")
	f.newSession(t, "s4", "a4")
	for _, sid := range []string{"s3", "s4"} { // read from MongoDB
		if err := f.svc.state.drop(ctx, sid); err != nil {
			t.Fatal(err)
		}
	}
	list, err := f.svc.SessionSummaries(ctx, []string{"s1", "nope", "s2", "s3", "s1", "s4"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Session{}
	for _, s := range list {
		if _, dup := got[s.ID]; dup {
			t.Fatalf("%s answered twice", s.ID)
		}
		got[s.ID] = s
	}
	if len(got) != 4 {
		t.Fatalf("got %d sessions (%v), want s1 to s4", len(got), list)
	}
	if s := got["s1"]; s.Status != StatusAssigned || s.AgentID != "a1" || !s.LastSeqKnown {
		t.Fatalf("s1 from state: %+v", s)
	}
	if s := got["s2"]; s.Status != StatusAssigned || s.AgentID != "a3" {
		t.Fatalf("s2 from state: %+v", s)
	}
	if s := got["s3"]; s.Status != StatusAssigned || s.AgentID != "a2" || s.CustomerID != "c-s3" {
		t.Fatalf("s3 from MongoDB: %+v", s)
	}
	if s := got["s4"]; s.AgentID != "a4" || s.CustomerID != "c-s4" {
		t.Fatalf("s4 from MongoDB: %+v", s)
	}

	for _, bad := range [][]string{nil, {""}, {"s1", ""}, make([]string, MaxSummaries+1)} {
		if _, err := f.svc.SessionSummaries(ctx, bad); err == nil {
			t.Fatalf("%d ids (%q...): no error", len(bad), bad[:min(len(bad), 2)])
		}
	}
	many := make([]string, MaxSummaries)
	for i := range many {
		many[i] = "s2"
	}
	if list, err := f.svc.SessionSummaries(ctx, many); err != nil || len(list) != 1 {
		t.Fatalf("%d ids of one session: %d answers, %v", len(many), len(list), err)
	}
}
