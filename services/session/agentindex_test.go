package session

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

func (f *fixture) assignedList(t *testing.T, agentID string) string {
	t.Helper()
	list, _, err := f.svc.ListSessions(context.Background(), sessionFilter{AgentID: agentID, Status: StatusAssigned, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	return strings.Join(ids, ",")
}

func (f *fixture) indexFields(t *testing.T, agentID string) map[string]string {
	t.Helper()
	m, err := f.rdb.HGetAll(context.Background(), agentIndexKey(agentID)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAgentIndexFollowsAssignments(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.newSession(t, "s1", "a1") // stored before any index exists
	f.newSession(t, "s2", "")
	f.newSession(t, "s3", "a9")
	if got := f.assignedList(t, "a1"); got != "s1" {
		t.Fatalf("first list (a rebuild) = %q, want s1", got)
	}
	if fields := f.indexFields(t, "a1"); fields[agentIndexComplete] == "" || fields["s1"] == "" {
		t.Fatalf("index after the rebuild: %v", fields)
	}
	assign := func(sid, agent string) {
		t.Helper()
		if _, err := f.svc.applyAssignment(ctx, nil, sid, agent, "", time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
	}
	// A new assignment is added to the existing index, not found by a rebuild.
	assign("s2", "a1")
	if fields := f.indexFields(t, "a1"); fields["s2"] == "" {
		t.Fatalf("s2 not indexed: %v", fields)
	}
	if got := f.assignedList(t, "a1"); got != "s2,s1" {
		t.Fatalf("list = %q, want s2,s1", got)
	}
	// Re-routed to another agent: gone from a1's list (and dropped from a1's index).
	assign("s1", "a2")
	if got := f.assignedList(t, "a1"); got != "s2" {
		t.Fatalf("a1 after the re-route = %q, want s2", got)
	}
	if fields := f.indexFields(t, "a1"); fields["s1"] != "" {
		t.Fatalf("stale entry kept: %v", fields)
	}
	if got := f.assignedList(t, "a2"); got != "s1" {
		t.Fatalf("a2 = %q, want s1", got)
	}
	// Closed: gone.
	if err := f.svc.repo.close(ctx, "s2", "agent:a1", "done", time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.state.setAgent(ctx, "s2", "a1", "", StatusClosed); err != nil {
		t.Fatal(err)
	}
	if got := f.assignedList(t, "a1"); got != "" {
		t.Fatalf("a1 after closing s2 = %q, want none", got)
	}
	// An agent with nothing assigned has a complete, empty index: no rebuild each time.
	if fields := f.indexFields(t, "a1"); fields[agentIndexComplete] == "" {
		t.Fatalf("empty index not kept: %v", fields)
	}
}

func TestAgentIndexIsRebuiltWhenLostOrOld(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.newSession(t, "s1", "a1")
	f.newSession(t, "s2", "a1")
	if got := f.assignedList(t, "a1"); got != "s2,s1" {
		t.Fatalf("list = %q", got)
	}
	// Lost with Redis: rebuilt from MongoDB.
	if err := f.rdb.Del(ctx, agentIndexKey("a1")).Err(); err != nil {
		t.Fatal(err)
	}
	if got := f.assignedList(t, "a1"); got != "s2,s1" {
		t.Fatalf("after losing the index = %q", got)
	}
	// An entry missing from a complete index (say Redis came back from an older
	// snapshot) is trusted until the index is agentIndexFresh old, then found again.
	if err := f.rdb.HDel(ctx, agentIndexKey("a1"), "s2").Err(); err != nil {
		t.Fatal(err)
	}
	if got := f.assignedList(t, "a1"); got != "s1" {
		t.Fatalf("with s2 missing from a fresh index = %q, want s1 (the index is trusted)", got)
	}
	old := time.Now().Add(-agentIndexFresh - time.Minute).UnixMilli()
	if err := f.rdb.HSet(ctx, agentIndexKey("a1"), agentIndexComplete, strconv.FormatInt(old, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	if got := f.assignedList(t, "a1"); got != "s2,s1" {
		t.Fatalf("after the index aged = %q, want s2,s1", got)
	}
}

func TestAgentIndexOnlyTheLastRebuildCompletes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := []string{agentIndexKey("a1")}
	ttl := agentIndexTTL.Milliseconds()
	now := time.Now().UnixMilli()
	for _, tok := range []string{"A", "B"} {
		if err := startAgentIndexScript.Run(ctx, f.rdb, key, tok, ttl).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// A started first and was overtaken by B: A's result must not complete the index
	// (what A read may predate assignments B's restart dropped).
	if n, err := finishAgentIndexScript.Run(ctx, f.rdb, key, "A", ttl, now, "s1").Int(); err != nil || n != 0 {
		t.Fatalf("A's finish = %d, %v; want refused", n, err)
	}
	if fields := f.indexFields(t, "a1"); fields[agentIndexComplete] != "" || fields["s1"] != "" {
		t.Fatalf("index after A: %v", fields)
	}
	if n, err := finishAgentIndexScript.Run(ctx, f.rdb, key, "B", ttl, now, "s1", "s2").Int(); err != nil || n != 1 {
		t.Fatalf("B's finish = %d, %v", n, err)
	}
	fields := f.indexFields(t, "a1")
	if fields[agentIndexComplete] == "" || fields["s1"] == "" || fields["s2"] == "" || fields[agentIndexBuilding] != "" {
		t.Fatalf("index after B: %v", fields)
	}
	// Assignments while no index exists are not recorded (the next read rebuilds).
	if err := f.svc.state.indexAssigned(ctx, "a7", "s9"); err != nil {
		t.Fatal(err)
	}
	if n, err := f.rdb.Exists(ctx, agentIndexKey("a7")).Result(); err != nil || n != 0 {
		t.Fatalf("an assignment created a partial index for a7 (%d, %v)", n, err)
	}
}
