package session

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/helmdesk/helmdesk/pkg/frames"
)

// Redis keys of a session's hot state. All keys of one session share a hash tag so a
// Redis Cluster keeps them on one slot.
func stateKey(sid string) string  { return "hd:sess:{" + sid + "}" }
func idsKey(sid string) string    { return "hd:sess:{" + sid + "}:ids" }
func recentKey(sid string) string { return "hd:sess:{" + sid + "}:recent" }

// storedKey holds the highest seq known to be in MongoDB, written after each insert: a
// repeat at or below it needs no insert (see persist).
func storedKey(sid string) string { return "hd:sess:{" + sid + "}:stored" }

// claimKey marks a one-time step of a session (closed, csat) as taken.
func claimKey(sid, step string) string { return "hd:sess:{" + sid + "}:" + step }

// initStateScript installs state loaded from MongoDB unless another writer did first.
// KEYS: state, ids, and for a brand-new session its stored watermark (set to 0).
// ARGV: ttl, seq, agent, status, first_response(0|1), group, then id, seq pairs.
var initStateScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'seq') == 1 then return 0 end
if KEYS[3] then redis.call('SET', KEYS[3], 0, 'NX', 'EX', ARGV[1]) end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'agent', ARGV[3], 'status', ARGV[4], 'fr', ARGV[5], 'group', ARGV[6])
for i = 7, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
`)

type stateStore struct {
	rdb *redis.Client
	ttl time.Duration
}

type seqResult struct {
	agent     string
	responded bool    // an agent message was already claimed as the first response
	stored    int64   // messages up to this seq are known to be in MongoDB
	seqs      []int64 // negative: duplicate of that seq
}

// assignAll sequences the batch's sessions in two pipelined round trips whatever the
// number of sessions: read their last seq and the client ids already seen, then write
// the new seqs. No script and no transaction are needed because the owner of the
// session's partition is its only writer; if two ever wrote at once (a zombie owner
// during a rebalance), the unique (session_id, seq) index in MongoDB refuses the
// second and the batch is re-sequenced from storage. Sessions without state in Redis
// come back in cold.
func (s *stateStore) assignAll(ctx context.Context, order []string, ids map[string][]string) (map[string]seqResult, []string, error) {
	read := s.rdb.Pipeline()
	states := make([]*redis.SliceCmd, len(order))
	seen := make([]*redis.SliceCmd, len(order))
	stored := make([]*redis.StringCmd, len(order))
	for i, sid := range order {
		states[i] = read.HMGet(ctx, stateKey(sid), "seq", "agent", "fr")
		seen[i] = read.HMGet(ctx, idsKey(sid), ids[sid]...)
		stored[i] = read.Get(ctx, storedKey(sid))
	}
	if _, err := read.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("read seq state: %w", err)
	}
	out := make(map[string]seqResult, len(order))
	var cold []string
	write := s.rdb.Pipeline()
	writes := 0
	for i, sid := range order {
		st, err := states[i].Result()
		if err != nil {
			return nil, nil, fmt.Errorf("read seq state of %s: %w", sid, err)
		}
		lastStr, _ := st[0].(string)
		if lastStr == "" {
			cold = append(cold, sid)
			continue
		}
		last, err := strconv.ParseInt(lastStr, 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("seq of session %s is %q: %w", sid, lastStr, err)
		}
		prior, err := seen[i].Result()
		if err != nil {
			return nil, nil, fmt.Errorf("read client ids of %s: %w", sid, err)
		}
		r := seqResult{seqs: make([]int64, len(ids[sid]))}
		r.agent, _ = st[1].(string)
		fr, _ := st[2].(string)
		r.responded = fr != "" && fr != "0"
		r.stored, _ = stored[i].Int64() // missing (redis.Nil) or unreadable: nothing known stored
		inBatch := map[string]int64{}
		var fields []any
		for j, id := range ids[sid] {
			if v, ok := prior[j].(string); ok && v != "" {
				n, _ := strconv.ParseInt(v, 10, 64)
				r.seqs[j] = -n // a repeat of an earlier message
				continue
			}
			if n, ok := inBatch[id]; ok {
				r.seqs[j] = -n // repeated within this batch
				continue
			}
			last++
			inBatch[id] = last
			r.seqs[j] = last
			fields = append(fields, id, last)
		}
		out[sid] = r
		if len(fields) > 0 {
			write.HSet(ctx, stateKey(sid), "seq", last)
			write.HSet(ctx, idsKey(sid), fields...)
		}
		write.Expire(ctx, stateKey(sid), s.ttl)
		write.Expire(ctx, idsKey(sid), s.ttl)
		writes++
	}
	if writes > 0 {
		if _, err := write.Exec(ctx); err != nil {
			return nil, nil, fmt.Errorf("write seq state: %w", err)
		}
	}
	return out, cold, nil
}

// install loads state built from MongoDB.
func (s *stateStore) install(ctx context.Context, sess Session, recent []Message) error {
	return s.initState(ctx, sess, recent, []string{stateKey(sess.ID), idsKey(sess.ID)})
}

// create installs the state of a brand-new session. Its stored watermark starts at 0:
// nothing of it is in MongoDB, so until the first batch reaches the recent buffer a
// history read can be answered "nothing yet" instead of by a MongoDB query.
func (s *stateStore) create(ctx context.Context, sess Session) error {
	return s.initState(ctx, sess, nil, []string{stateKey(sess.ID), idsKey(sess.ID), storedKey(sess.ID)})
}

func (s *stateStore) initState(ctx context.Context, sess Session, recent []Message, keys []string) error {
	var last int64
	args := []any{int(s.ttl.Seconds()), 0, sess.AgentID, string(sess.Status), boolFlag(sess.FirstResponseAt != nil), sess.Group}
	for _, m := range recent {
		last = max(last, m.Seq)
		args = append(args, m.ClientMsgID, m.Seq)
	}
	args[1] = last
	if err := initStateScript.Run(ctx, s.rdb, keys, args...).Err(); err != nil {
		return fmt.Errorf("install state of session %s: %w", sess.ID, err)
	}
	return nil
}

func boolFlag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// drop forgets a session's state so the next write reloads it from MongoDB.
func (s *stateStore) drop(ctx context.Context, sid string) error {
	if err := s.rdb.Del(ctx, stateKey(sid), idsKey(sid), recentKey(sid), storedKey(sid)).Err(); err != nil {
		return fmt.Errorf("drop state of session %s: %w", sid, err)
	}
	return nil
}

var setAgentScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'agent', ARGV[1], 'status', ARGV[2], 'group', ARGV[3])
return 1
`)

// setAgent records the session's agent, status and group. A missing state is left missing:
// it is rebuilt from MongoDB, which already has the assignment, on the next write.
// An assignment is also added to the agent's index (agentindex.go).
func (s *stateStore) setAgent(ctx context.Context, sid, agentID, group string, status Status) error {
	if err := setAgentScript.Run(ctx, s.rdb, []string{stateKey(sid)}, agentID, string(status), group).Err(); err != nil {
		return fmt.Errorf("record agent of session %s: %w", sid, err)
	}
	if status == StatusAssigned && agentID != "" {
		return s.indexAssigned(ctx, agentID, sid)
	}
	return nil
}

// addClaimFirstResponse queues, on pipe, the claim of a session's first response: the
// command's value is 1 exactly once per session, for its first agent message.
func (s *stateStore) addClaimFirstResponse(ctx context.Context, pipe redis.Pipeliner, sid string) *redis.IntCmd {
	return pipe.HIncrBy(ctx, stateKey(sid), "fr", 1)
}

// summaries reads the summaries of sids in one round trip (see SessionSummary);
// sessions without usable state (none, or state from before it kept the group) are
// left out.
func (s *stateStore) summaries(ctx context.Context, sids []string) (map[string]Session, error) {
	pipe := s.rdb.Pipeline()
	states := make([]*redis.SliceCmd, len(sids))
	rated := make([]*redis.IntCmd, len(sids))
	for i, sid := range sids {
		states[i] = pipe.HMGet(ctx, stateKey(sid), "seq", "agent", "status", "group")
		rated[i] = pipe.Exists(ctx, claimKey(sid, "csat"))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read session state: %w", err)
	}
	out := make(map[string]Session, len(sids))
	for i, sid := range sids {
		v := states[i].Val()
		seqStr, _ := v[0].(string)
		status, _ := v[2].(string)
		group, hasGroup := v[3].(string)
		if seqStr == "" || status == "" || !hasGroup {
			continue
		}
		seq, err := strconv.ParseInt(seqStr, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("seq of session %s is %q: %w", sid, seqStr, err)
		}
		agent, _ := v[1].(string)
		sess := Session{ID: sid, Status: Status(status), AgentID: agent, Group: group, LastSeq: seq, LastSeqKnown: true}
		if rated[i].Val() == 1 {
			sess.CSAT = &CSAT{}
		}
		out[sid] = sess
	}
	return out, nil
}

func (s *stateStore) lastSeq(ctx context.Context, sid string) (int64, bool, error) {
	v, err := s.rdb.HGet(ctx, stateKey(sid), "seq").Result()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read seq of session %s: %w", sid, err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil, nil
}

// Why the recent buffer could not answer a history read (the label of the MongoDB
// reads it causes).
const (
	missEmpty = "empty" // nothing buffered: the state expired or was dropped
	missOlder = "older" // the reader wants messages older than the buffer holds
	missHole  = "hole"  // a batch replayed after a crash is buffered out of order or partly
)

// recentAfter serves messages after afterSeq from the recent buffer. It returns why
// it cannot answer (missEmpty, missOlder, missHole), or "" with the answer. When the
// buffer simply ends, the run up to its end is the answer, possibly empty: later
// messages are sequenced but not yet fanned out, and reach readers live when they
// are.
//
// An empty buffer answers too when the stored watermark is at or below afterSeq:
// MongoDB has nothing newer either (a new session whose first messages are still on
// their way). Without the watermark (it expired with the buffer) MongoDB is asked.
func (s *stateStore) recentAfter(ctx context.Context, sid string, afterSeq int64, limit int) (msgs []frames.Message, miss string, err error) {
	pipe := s.rdb.Pipeline()
	recent := pipe.LRange(ctx, recentKey(sid), 0, -1)
	stored := pipe.Get(ctx, storedKey(sid))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", fmt.Errorf("read recent messages of %s: %w", sid, err)
	}
	raw := recent.Val()
	buf := make([]frames.Message, 0, len(raw))
	for _, r := range raw {
		var m frames.Message
		if err := json.Unmarshal([]byte(r), &m); err != nil {
			return nil, missHole, nil
		}
		buf = append(buf, m)
	}
	if len(buf) == 0 {
		if n, err := stored.Int64(); err == nil && n <= afterSeq {
			return nil, "", nil
		}
		return nil, missEmpty, nil
	}
	slices.SortStableFunc(buf, func(a, b frames.Message) int { return cmp.Compare(a.Seq, b.Seq) })
	if buf[0].Seq > afterSeq+1 {
		return nil, missOlder, nil
	}
	want := afterSeq + 1
	for _, m := range buf {
		switch {
		case m.Seq < want:
			continue // before the range, or a copy of one already taken
		case m.Seq > want:
			return nil, missHole, nil
		}
		if len(msgs) == limit {
			break
		}
		msgs = append(msgs, m)
		want++
	}
	return msgs, "", nil
}

// claim takes a once-per-session step (closing, rating) atomically across replicas;
// it reports false when someone took it before.
func (s *stateStore) claim(ctx context.Context, sid, step string) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, claimKey(sid, step), 1, 30*24*time.Hour).Result()
	if err != nil {
		return false, fmt.Errorf("claim %s of session %s: %w", step, sid, err)
	}
	return ok, nil
}

// unclaim gives a step back when it could not be completed.
func (s *stateStore) unclaim(ctx context.Context, sid, step string) {
	s.rdb.Del(ctx, claimKey(sid, step))
}
