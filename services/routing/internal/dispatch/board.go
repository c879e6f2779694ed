package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Status is an agent's presence.
type Status string

// Presence states.
const (
	Online  Status = "online"
	Away    Status = "away"
	Offline Status = "offline"
)

// Strategy is how an agent of a group is chosen.
type Strategy string

// Strategies.
const (
	// LeastLoaded picks the agent with the fewest sessions, then the one idle longest
	// (least recently assigned).
	LeastLoaded Strategy = "ll"
	// RoundRobin picks the agent assigned least recently.
	RoundRobin Strategy = "rr"
)

// Board is the shared, Redis-backed state of routing: agents' presence and load,
// queues and the outbox of routed sessions. Every change is one Lua script, so
// several routing replicas can use one board concurrently.
type Board struct {
	rdb    redis.UniversalClient
	prefix string
	keys   []string

	assign, release, transfer, drain, reclaim, remove, position, overflow *redis.Script
	upsertAgent, status, connect, disconnect, presence, rulesVersion      *redis.Script
}

// New returns a board whose keys start with prefix. The prefix should carry a hash
// tag (e.g. "helmdesk:{routing}:") so that every key lands in one Redis Cluster slot.
func New(rdb redis.UniversalClient, prefix string) *Board {
	return &Board{
		rdb:          rdb,
		prefix:       prefix,
		keys:         []string{prefix}, // routes scripts to the prefix's slot on a cluster
		assign:       redis.NewScript(assignScript),
		release:      redis.NewScript(releaseScript),
		transfer:     redis.NewScript(transferScript),
		drain:        redis.NewScript(drainScript),
		reclaim:      redis.NewScript(reclaimScript),
		remove:       redis.NewScript(removeScript),
		position:     redis.NewScript(positionScript),
		overflow:     redis.NewScript(overflowScript),
		upsertAgent:  redis.NewScript(upsertAgentScript),
		status:       redis.NewScript(statusScript),
		connect:      redis.NewScript(connectScript),
		disconnect:   redis.NewScript(disconnectScript),
		presence:     redis.NewScript(presenceScript),
		rulesVersion: redis.NewScript(rulesVersionScript),
	}
}

// Load loads every script into Redis's script cache (they are reloaded on demand
// when Redis restarts).
func (b *Board) Load(ctx context.Context) error {
	for _, s := range []*redis.Script{b.assign, b.release, b.transfer, b.drain, b.reclaim, b.remove, b.position, b.overflow,
		b.upsertAgent, b.status, b.connect, b.disconnect, b.presence, b.rulesVersion} {
		if err := s.Load(ctx, b.rdb).Err(); err != nil {
			return fmt.Errorf("load routing script: %w", err)
		}
	}
	return nil
}

func (b *Board) run(ctx context.Context, s *redis.Script, args ...any) (any, error) {
	return s.Run(ctx, b.rdb, b.keys, append([]any{b.prefix}, args...)...).Result()
}

func (b *Board) key(parts ...string) string { return b.prefix + strings.Join(parts, "") }

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// strs converts a script's array reply.
func strs(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, len(arr))
	for i, e := range arr {
		switch x := e.(type) {
		case string:
			out[i] = x
		case int64:
			out[i] = strconv.FormatInt(x, 10)
		}
	}
	return out
}

func atoi(s string) int64 {
	v, _ := strconv.ParseInt(s, 10, 64)
	return v
}

func splitGroups(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// Agent is an agent's routing state.
type Agent struct {
	ID          string
	Status      Status
	AutoAway    bool // away because their console sockets dropped
	Load        int
	Max         int
	Groups      []string
	Connections int // console sockets open
}

// UpsertAgent creates (offline) or updates an agent's capacity and groups. It
// returns the agent's status.
func (b *Board) UpsertAgent(ctx context.Context, id string, maxSessions int, groups []string) (Status, error) {
	v, err := b.run(ctx, b.upsertAgent, id, maxSessions, strings.Join(groups, ","))
	if err != nil {
		return "", fmt.Errorf("mirror agent %s: %w", id, err)
	}
	return Status(strs(v)[0]), nil
}

// Agent returns an agent's state; false when the board does not know the agent.
func (b *Board) Agent(ctx context.Context, id string, now time.Time) (Agent, bool, error) {
	agents, err := b.Agents(ctx, []string{id}, now)
	if err != nil || len(agents) == 0 {
		return Agent{}, false, err
	}
	return agents[0], true, nil
}

// Agents returns the state of the agents the board knows, in the order asked.
func (b *Board) Agents(ctx context.Context, ids []string, now time.Time) ([]Agent, error) {
	pipe := b.rdb.Pipeline()
	type cmds struct {
		hash  *redis.SliceCmd
		load  *redis.IntCmd
		conns *redis.IntCmd
	}
	cs := make([]cmds, len(ids))
	for i, id := range ids {
		cs[i] = cmds{
			hash:  pipe.HMGet(ctx, b.key("a:", id), "status", "max", "groups", "auto_away"),
			load:  pipe.SCard(ctx, b.key("h:", id)),
			conns: pipe.ZCount(ctx, b.key("c:", id), "("+strconv.FormatInt(ms(now), 10), "+inf"),
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read agent state: %w", err)
	}
	out := make([]Agent, 0, len(ids))
	for i, id := range ids {
		h := cs[i].hash.Val()
		st, _ := h[0].(string)
		if st == "" {
			continue
		}
		maxStr, _ := h[1].(string)
		groups, _ := h[2].(string)
		autoAway, _ := h[3].(string)
		out = append(out, Agent{
			ID: id, Status: Status(st), AutoAway: autoAway == "1",
			Load: int(cs[i].load.Val()), Max: int(atoi(maxStr)), Groups: splitGroups(groups),
			Connections: int(cs[i].conns.Val()),
		})
	}
	return out, nil
}

// SetStatus changes an agent's presence. Going offline releases every session the
// agent held and queues each again, first in line, in the group it was assigned in;
// their ids are returned. found is false for an unknown agent.
func (b *Board) SetStatus(ctx context.Context, id string, st Status, now time.Time) (prev Status, released []string, found bool, err error) {
	v, err := b.run(ctx, b.status, id, string(st), ms(now))
	if err != nil {
		return "", nil, false, fmt.Errorf("set agent %s %s: %w", id, st, err)
	}
	r := strs(v)
	if r[0] == "missing" {
		return "", nil, false, nil
	}
	return Status(r[0]), r[1:], true, nil
}

// Connect records or refreshes a console connection that stays live for ttl.
// restored says an auto-away agent is online again.
func (b *Board) Connect(ctx context.Context, id, conn string, now time.Time, ttl, grace time.Duration) (restored, found bool, err error) {
	v, err := b.run(ctx, b.connect, id, conn, ms(now), ttl.Milliseconds(), grace.Milliseconds())
	if err != nil {
		return false, false, fmt.Errorf("record connection of agent %s: %w", id, err)
	}
	r := strs(v)
	if r[0] == "missing" {
		return false, false, nil
	}
	return r[1] == "1", true, nil
}

// Disconnect ends a console connection now.
func (b *Board) Disconnect(ctx context.Context, id, conn string, now time.Time, grace time.Duration) (found bool, err error) {
	v, err := b.run(ctx, b.disconnect, id, conn, ms(now), grace.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("end connection of agent %s: %w", id, err)
	}
	return strs(v)[0] != "missing", nil
}

// SweepPresence makes away the online agents whose last connection ended more than
// grace ago, and returns them.
func (b *Board) SweepPresence(ctx context.Context, now time.Time, grace time.Duration, limit int) ([]string, error) {
	v, err := b.run(ctx, b.presence, ms(now), grace.Milliseconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("sweep agent presence: %w", err)
	}
	return strs(v), nil
}

// OnlineAgents counts the agents online.
func (b *Board) OnlineAgents(ctx context.Context) (int64, error) {
	n, err := b.rdb.SCard(ctx, b.key("online")).Result()
	if err != nil {
		return 0, fmt.Errorf("count online agents: %w", err)
	}
	return n, nil
}

// Route says where a session should go.
type Route struct {
	AgentID  string // try this agent first ("" = none)
	Group    string // then this group ("" = everyone)
	Strategy Strategy
	Priority int // queue priority, 0..100
}

// Placement is where a session went.
type Placement struct {
	Assigned bool
	AgentID  string
	Group    string
	Position int64 // 1-based queue position when queued
	// DrainNeeded says the session queued behind others although an agent of the
	// group is free: a drain will serve the queue.
	DrainNeeded bool
}

// StaleRulesError says the rules the caller evaluated are not the version in force.
type StaleRulesError struct{ Version int64 }

func (e *StaleRulesError) Error() string {
	return fmt.Sprintf("routing rules changed: version %d is in force", e.Version)
}

func placement(r []string) Placement {
	return Placement{Assigned: r[0] == "assigned", AgentID: r[1], Group: r[2], Position: atoi(r[3]), DrainNeeded: r[4] == "1"}
}

// Assign places a new session: with r.AgentID when that agent is online with spare
// capacity, else with an agent of r.Group, else in r.Group's queue. A session that is
// already placed keeps its placement. rulesVersion must be the rules version in force,
// or a *StaleRulesError is returned.
func (b *Board) Assign(ctx context.Context, sessionID string, r Route, rulesVersion int64, now time.Time) (Placement, error) {
	v, err := b.run(ctx, b.assign, sessionID, ms(now), strconv.FormatInt(rulesVersion, 10), r.AgentID, r.Group, string(r.Strategy), r.Priority)
	if err != nil {
		return Placement{}, fmt.Errorf("assign session %s: %w", sessionID, err)
	}
	res := strs(v)
	if res[0] == "stale" {
		return Placement{}, &StaleRulesError{Version: atoi(res[1])}
	}
	return placement(res), nil
}

// Released says what a release freed.
type Released struct {
	Released    bool     // an agent's capacity was freed
	Dequeued    bool     // the session was waiting and left its queue
	AgentID     string   // the agent who held it
	AgentGroups []string // that agent's groups
	Waiting     bool     // sessions wait in a queue the agent serves: drain them
}

// Release frees the session held by agentID ("" = whoever holds it; a waiting
// session then leaves its queue). Releasing twice is a no-op.
func (b *Board) Release(ctx context.Context, sessionID, agentID string) (Released, error) {
	v, err := b.run(ctx, b.release, sessionID, agentID)
	if err != nil {
		return Released{}, fmt.Errorf("release session %s: %w", sessionID, err)
	}
	r := strs(v)
	return Released{Released: r[0] == "released", Dequeued: r[0] == "dequeued", AgentID: r[1], AgentGroups: splitGroups(r[2]), Waiting: r[3] == "1"}, nil
}

// Transferred is the result of a transfer.
type Transferred struct {
	Placement
	Same           bool // the session was already with the target agent
	Unavailable    bool // the target agent cannot take it; nothing changed
	PreviousAgent  string
	PreviousGroups []string
}

// Transfer moves a session to r.AgentID (who must be online with spare capacity) or,
// when r.AgentID is empty, routes it in r.Group, releasing the agent who held it.
func (b *Board) Transfer(ctx context.Context, sessionID string, r Route, now time.Time) (Transferred, error) {
	v, err := b.run(ctx, b.transfer, sessionID, ms(now), r.AgentID, r.Group, string(r.Strategy), r.Priority)
	if err != nil {
		return Transferred{}, fmt.Errorf("transfer session %s: %w", sessionID, err)
	}
	res := strs(v)
	t := Transferred{PreviousAgent: res[5], PreviousGroups: splitGroups(res[6])}
	switch res[0] {
	case "same":
		t.Same = true
		t.Assigned, t.AgentID = true, res[1]
	case "unavailable":
		t.Unavailable = true
	default:
		t.Placement = placement(res)
	}
	return t, nil
}

// Routed is a waiting session that a drain assigned.
type Routed struct {
	SessionID  string
	AgentID    string
	Group      string
	EnqueuedAt time.Time
	RoutedAt   time.Time
	record     string // the outbox member
}

func parseRouted(recs []string) []Routed {
	out := make([]Routed, 0, len(recs))
	for _, rec := range recs {
		f := strings.Split(rec, "\x1f")
		if len(f) != 5 {
			continue
		}
		out = append(out, Routed{SessionID: f[0], AgentID: f[1], Group: f[2], EnqueuedAt: fromMS(atoi(f[3])), RoutedAt: fromMS(atoi(f[4])), record: rec})
	}
	return out
}

// Drain assigns waiting sessions of the groups (every group with a queue when groups
// is nil) to available agents, best first, at most limit of them. Each is recorded
// in the outbox under a lease: Ack it once published; Reclaim hands out records whose
// lease ended unacknowledged.
func (b *Board) Drain(ctx context.Context, groups []string, now time.Time, limit int, lease time.Duration) ([]Routed, error) {
	args := []any{ms(now), limit, lease.Milliseconds()}
	for _, g := range groups {
		args = append(args, g)
	}
	v, err := b.run(ctx, b.drain, args...)
	if err != nil {
		return nil, fmt.Errorf("drain queues: %w", err)
	}
	return parseRouted(strs(v)), nil
}

// Ack removes published records from the outbox.
func (b *Board) Ack(ctx context.Context, routed []Routed) error {
	if len(routed) == 0 {
		return nil
	}
	members := make([]any, len(routed))
	for i, r := range routed {
		members[i] = r.record
	}
	if err := b.rdb.ZRem(ctx, b.key("outbox"), members...).Err(); err != nil {
		return fmt.Errorf("acknowledge routed sessions: %w", err)
	}
	return nil
}

// Reclaim leases up to limit outbox records whose lease ended.
func (b *Board) Reclaim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Routed, error) {
	v, err := b.run(ctx, b.reclaim, ms(now), lease.Milliseconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("reclaim routed sessions: %w", err)
	}
	return parseRouted(strs(v)), nil
}

// Remove takes a waiting session out of its queue; false when it was not waiting.
func (b *Board) Remove(ctx context.Context, sessionID string) (bool, error) {
	v, err := b.run(ctx, b.remove, sessionID)
	if err != nil {
		return false, fmt.Errorf("remove session %s from queue: %w", sessionID, err)
	}
	n, _ := v.(int64)
	return n == 1, nil
}

// Position is where a session is.
type Position struct {
	Known      bool
	Queued     bool
	AgentID    string
	Group      string
	Position   int64
	Length     int64
	EnqueuedAt time.Time
}

// Position reports where a session is.
func (b *Board) Position(ctx context.Context, sessionID string) (Position, error) {
	v, err := b.run(ctx, b.position, sessionID)
	if err != nil {
		return Position{}, fmt.Errorf("locate session %s: %w", sessionID, err)
	}
	r := strs(v)
	p := Position{Known: r[0] != "", Queued: r[0] == "q", AgentID: r[1], Group: r[2], Position: atoi(r[3]), Length: atoi(r[4])}
	if p.Queued {
		p.EnqueuedAt = fromMS(atoi(r[5]))
	}
	return p, nil
}

// Overflow moves sessions waiting since before cutoff into the fallback group's
// queue (keeping their priority and arrival order) and returns them.
func (b *Board) Overflow(ctx context.Context, cutoff time.Time, fallback string, limit int) ([]string, error) {
	v, err := b.run(ctx, b.overflow, ms(cutoff), fallback, limit)
	if err != nil {
		return nil, fmt.Errorf("overflow queues: %w", err)
	}
	return strs(v), nil
}

// QueueStats describes one non-empty queue.
type QueueStats struct {
	Group  string
	Length int64
	Oldest time.Time
}

// Queues returns every non-empty queue, by group.
func (b *Board) Queues(ctx context.Context) ([]QueueStats, error) {
	groups, err := b.rdb.SMembers(ctx, b.key("qs")).Result()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	pipe := b.rdb.Pipeline()
	lens := make([]*redis.IntCmd, len(groups))
	oldest := make([]*redis.ZSliceCmd, len(groups))
	for i, g := range groups {
		lens[i] = pipe.ZCard(ctx, b.key("q:", g))
		oldest[i] = pipe.ZRangeWithScores(ctx, b.key("qt:", g), 0, 0)
	}
	if len(groups) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("read queues: %w", err)
		}
	}
	out := make([]QueueStats, 0, len(groups))
	for i, g := range groups {
		q := QueueStats{Group: g, Length: lens[i].Val()}
		if z := oldest[i].Val(); len(z) > 0 {
			q.Oldest = fromMS(int64(z[0].Score))
		}
		if q.Length > 0 {
			out = append(out, q)
		}
	}
	return out, nil
}

// RaiseRulesVersion makes v the rules version in force unless a newer one is, and
// returns the version in force.
func (b *Board) RaiseRulesVersion(ctx context.Context, v int64) (int64, error) {
	res, err := b.run(ctx, b.rulesVersion, v)
	if err != nil {
		return 0, fmt.Errorf("publish rules version %d: %w", v, err)
	}
	n, _ := res.(int64)
	return n, nil
}

// RulesVersion returns the rules version in force (0 when none is recorded).
func (b *Board) RulesVersion(ctx context.Context) (int64, error) {
	v, err := b.rdb.Get(ctx, b.key("rules_ver")).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read rules version: %w", err)
	}
	return v, nil
}
