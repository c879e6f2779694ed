package dispatch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/helmdesk/helmdesk/pkg/testdeps"
)

const prefix = "test:{routing}:"

// backends are the Redis implementations the board must work on: redis-server in
// production, miniredis in `helmdesk dev`.
// miniredis runs Lua far slower, so it gets fewer operations.
var backends = map[string]struct {
	start func(testing.TB) string
	ops   int
}{
	"redis-server": {testdeps.Redis, 400},
	"miniredis":    {testdeps.MiniRedis, 100},
}

func newBoard(t *testing.T, addr string) (*Board, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 32})
	t.Cleanup(func() { _ = rdb.Close() })
	b := New(rdb, prefix)
	if err := b.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b, rdb
}

// TestBoardInvariants runs random operations from several goroutines and then checks
// that the board's indexes agree with each other: no agent over capacity, every held
// session recorded as assigned to its holder, every waiting session in exactly one
// queue, and the availability sets holding exactly the online agents with room.
func TestBoardInvariants(t *testing.T) {
	t.Parallel()
	for name, backend := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testInvariants(t, backend.start(t), backend.ops)
		})
	}
}

func testInvariants(t *testing.T, addr string, ops int) {
	ctx := context.Background()
	b, rdb := newBoard(t, addr)
	groups := []string{"", "g1", "g2", "g3"}
	agents := make([]string, 12)
	for i := range agents {
		agents[i] = fmt.Sprintf("a%d", i)
		if _, err := b.UpsertAgent(ctx, agents[i], 2+i%3, []string{groups[1+i%3]}); err != nil {
			t.Fatal(err)
		}
	}
	var clock struct {
		sync.Mutex
		now time.Time
	}
	clock.now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		clock.now = clock.now.Add(time.Second)
		return clock.now
	}
	statuses := []Status{Online, Online, Online, Away, Offline}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for range ops {
				sid := "s" + strconv.Itoa(r.IntN(300))
				agent := agents[r.IntN(len(agents))]
				group := groups[r.IntN(len(groups))]
				strat := []Strategy{LeastLoaded, RoundRobin}[r.IntN(2)]
				var err error
				switch op := r.IntN(100); {
				case op < 35:
					route := Route{Group: group, Strategy: strat, Priority: r.IntN(101)}
					if r.IntN(4) == 0 {
						route.AgentID = agent
					}
					_, err = b.Assign(ctx, sid, route, 0, now())
				case op < 55:
					aid := ""
					if r.IntN(2) == 0 {
						aid = agent
					}
					_, err = b.Release(ctx, sid, aid)
				case op < 65:
					_, _, _, err = b.SetStatus(ctx, agent, statuses[r.IntN(len(statuses))], now())
				case op < 75:
					_, err = b.Drain(ctx, nil, now(), 5, time.Minute)
				case op < 80:
					_, err = b.Drain(ctx, []string{"", group}, now(), 5, time.Minute)
				case op < 85:
					if r.IntN(2) == 0 {
						_, err = b.Transfer(ctx, sid, Route{AgentID: agent, Group: group, Strategy: LeastLoaded}, now())
					} else {
						_, err = b.Transfer(ctx, sid, Route{Group: group, Strategy: strat, Priority: r.IntN(101)}, now())
					}
				case op < 88:
					_, err = b.Remove(ctx, sid)
				case op < 90:
					_, err = b.Overflow(ctx, now().Add(-time.Minute), group, 10)
				case op < 93:
					// Capacity only grows here, so "load ≤ max" must always hold.
					idx := slices.Index(agents, agent)
					_, err = b.UpsertAgent(ctx, agent, 3+idx%3, []string{groups[1+r.IntN(3)], groups[1+r.IntN(3)]})
				case op < 96:
					_, _, err = b.Connect(ctx, agent, "c"+strconv.Itoa(r.IntN(2)), now(), 5*time.Second, 3*time.Second)
				case op < 98:
					_, err = b.Disconnect(ctx, agent, "c"+strconv.Itoa(r.IntN(2)), now(), 3*time.Second)
				default:
					_, err = b.SweepPresence(ctx, now(), 3*time.Second, 50)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	checkInvariants(t, rdb, agents, groups)
}

func checkInvariants(t *testing.T, rdb *redis.Client, agents, allGroups []string) {
	t.Helper()
	ctx := context.Background()
	key := func(s ...string) string { return prefix + strings.Join(s, "") }
	held := map[string]string{}
	for _, id := range agents {
		h := rdb.HGetAll(ctx, key("a:", id)).Val()
		maxSessions, _ := strconv.Atoi(h["max"])
		sessions := rdb.SMembers(ctx, key("h:", id)).Val()
		if len(sessions) > maxSessions {
			t.Errorf("%s holds %d sessions, max %d", id, len(sessions), maxSessions)
		}
		for _, sid := range sessions {
			if other, dup := held[sid]; dup {
				t.Errorf("%s held by %s and %s", sid, other, id)
			}
			held[sid] = id
			s := rdb.HGetAll(ctx, key("s:", sid)).Val()
			if s["st"] != "a" || s["agent"] != id {
				t.Errorf("%s held by %s but recorded as %v", sid, id, s)
			}
		}
		available := h["status"] == "online" && len(sessions) < maxSessions
		mine := append([]string{""}, splitGroups(h["groups"])...)
		for _, g := range allGroups {
			wantIn := available && slices.Contains(mine, g)
			for _, idx := range []string{"ll:", "rr:"} {
				_, err := rdb.ZScore(ctx, key(idx, g), id).Result()
				if in := err == nil; in != wantIn {
					t.Errorf("%s in %s%q = %v, want %v (status %s, load %d/%d, groups %v)", id, idx, g, in, wantIn, h["status"], len(sessions), maxSessions, mine)
				}
			}
		}
		if h["status"] == "online" != rdb.SIsMember(ctx, key("online"), id).Val() {
			t.Errorf("%s: online set disagrees with status %s", id, h["status"])
		}
	}
	queuedIn := map[string]string{}
	nonEmpty := map[string]bool{}
	for _, g := range allGroups {
		members := rdb.ZRange(ctx, key("q:", g), 0, -1).Val()
		if len(members) > 0 {
			nonEmpty[g] = true
		}
		times := rdb.ZRange(ctx, key("qt:", g), 0, -1).Val()
		slices.Sort(times)
		sorted := slices.Sorted(slices.Values(members))
		if !slices.Equal(sorted, times) {
			t.Errorf("queue %q and its time index differ: %v vs %v", g, sorted, times)
		}
		for _, sid := range members {
			if other, dup := queuedIn[sid]; dup {
				t.Errorf("%s waits in %q and %q", sid, other, g)
			}
			queuedIn[sid] = g
			if agent, ok := held[sid]; ok {
				t.Errorf("%s waits in %q and is held by %s", sid, g, agent)
			}
			s := rdb.HGetAll(ctx, key("s:", sid)).Val()
			if s["st"] != "q" || s["group"] != g {
				t.Errorf("%s waits in %q but recorded as %v", sid, g, s)
			}
		}
	}
	qs := rdb.SMembers(ctx, key("qs")).Val()
	for _, g := range allGroups {
		if slices.Contains(qs, g) != nonEmpty[g] {
			t.Errorf("queue set says %q non-empty = %v, it is %v", g, slices.Contains(qs, g), nonEmpty[g])
		}
	}
	// Every session record is either held or waiting.
	for _, k := range rdb.Keys(ctx, prefix+"s:*").Val() {
		sid := k[len(prefix)+2:]
		if _, h := held[sid]; !h {
			if _, q := queuedIn[sid]; !q {
				t.Errorf("session record %s is neither held nor waiting: %v", sid, rdb.HGetAll(ctx, k).Val())
			}
		}
	}
	t.Logf("%d sessions held, %d waiting", len(held), len(queuedIn))
}

func TestStaleRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newBoard(t, testdeps.Redis(t))
	if v, err := b.RaiseRulesVersion(ctx, 3); err != nil || v != 3 {
		t.Fatalf("raise to 3 = %d, %v", v, err)
	}
	if v, _ := b.RaiseRulesVersion(ctx, 2); v != 3 {
		t.Errorf("raise to 2 lowered the version to %d", v)
	}
	_, err := b.Assign(ctx, "s1", Route{Strategy: RoundRobin}, 2, time.Now())
	var stale *StaleRulesError
	if !errors.As(err, &stale) || stale.Version != 3 {
		t.Fatalf("Assign with version 2 = %v", err)
	}
	p, err := b.Assign(ctx, "s1", Route{Strategy: RoundRobin}, 3, time.Now())
	if err != nil || p.Assigned || p.Position != 1 {
		t.Errorf("Assign with version 3 = %+v, %v", p, err)
	}
}
