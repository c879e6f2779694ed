package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/helmdesk/helmdesk/pkg/frames"
)

// Redis keys of a session's hot state. All keys of one session share a hash tag so a
// Redis Cluster keeps them on one slot.
func stateKey(sid string) string  { return "hd:sess:{" + sid + "}" }
func idsKey(sid string) string    { return "hd:sess:{" + sid + "}:ids" }
func recentKey(sid string) string { return "hd:sess:{" + sid + "}:recent" }

// errCold means Redis holds no state for the session: it must be loaded from MongoDB.
var errCold = errors.New("session state not in redis")

// assignSeqScript assigns sequence numbers to a batch of client message ids of one
// session. It returns the assigned agent followed by one number per id: the new seq,
// or minus the seq already given to that id (a duplicate). "COLD" when the state is
// missing.
var assignSeqScript = redis.NewScript(`
local last = redis.call('HGET', KEYS[1], 'seq')
if not last then return redis.error_reply('COLD') end
last = tonumber(last)
local out = {redis.call('HGET', KEYS[1], 'agent') or ''}
for i, id in ipairs(ARGV) do
  if i > 1 then
    local s = redis.call('HGET', KEYS[2], id)
    if s then
      out[i] = -tonumber(s)
    else
      last = last + 1
      redis.call('HSET', KEYS[2], id, last)
      out[i] = last
    end
  end
end
redis.call('HSET', KEYS[1], 'seq', last)
local ttl = tonumber(ARGV[1])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return out
`)

// initStateScript installs state loaded from MongoDB unless another writer did first.
// ARGV: ttl, seq, agent, status, first_response(0|1), then id, seq pairs.
var initStateScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'seq') == 1 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'agent', ARGV[3], 'status', ARGV[4], 'fr', ARGV[5])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
`)

type stateStore struct {
	rdb        *redis.Client
	ttl        time.Duration
	recentSize int
}

type seqResult struct {
	agent string
	seqs  []int64 // negative: duplicate of that seq
}

func (s *stateStore) assign(ctx context.Context, sid string, clientIDs []string) (seqResult, error) {
	args := make([]any, 0, len(clientIDs)+1)
	args = append(args, int(s.ttl.Seconds()))
	for _, id := range clientIDs {
		args = append(args, id)
	}
	res, err := assignSeqScript.Run(ctx, s.rdb, []string{stateKey(sid), idsKey(sid)}, args...).Slice()
	if err != nil {
		if strings.Contains(err.Error(), "COLD") {
			return seqResult{}, errCold
		}
		return seqResult{}, fmt.Errorf("assign seq for session %s: %w", sid, err)
	}
	out := seqResult{seqs: make([]int64, 0, len(clientIDs))}
	if a, ok := res[0].(string); ok {
		out.agent = a
	}
	for _, v := range res[1:] {
		n, _ := v.(int64)
		out.seqs = append(out.seqs, n)
	}
	if len(out.seqs) != len(clientIDs) {
		return seqResult{}, fmt.Errorf("assign seq for session %s: script returned %d results for %d ids", sid, len(out.seqs), len(clientIDs))
	}
	return out, nil
}

// assignAll sequences the batch's sessions in one round trip (a pipeline of script
// calls). Sessions without state in Redis come back in cold.
func (s *stateStore) assignAll(ctx context.Context, order []string, ids map[string][]string) (map[string]seqResult, []string, error) {
	for attempt := 0; ; attempt++ {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(order))
		for i, sid := range order {
			args := make([]any, 0, len(ids[sid])+1)
			args = append(args, int(s.ttl.Seconds()))
			for _, id := range ids[sid] {
				args = append(args, id)
			}
			cmds[i] = pipe.EvalSha(ctx, assignSeqScript.Hash(), []string{stateKey(sid), idsKey(sid)}, args...)
		}
		_, _ = pipe.Exec(ctx) // errors are per command, read below
		out := make(map[string]seqResult, len(order))
		var cold []string
		noScript := false
		for i, sid := range order {
			res, err := cmds[i].Slice()
			switch {
			case err != nil && strings.Contains(err.Error(), "COLD"):
				cold = append(cold, sid)
				continue
			case err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT"):
				noScript = true
				continue
			case err != nil:
				return nil, nil, fmt.Errorf("assign seq for session %s: %w", sid, err)
			}
			r := seqResult{seqs: make([]int64, 0, len(ids[sid]))}
			if a, ok := res[0].(string); ok {
				r.agent = a
			}
			for _, v := range res[1:] {
				n, _ := v.(int64)
				r.seqs = append(r.seqs, n)
			}
			if len(r.seqs) != len(ids[sid]) {
				return nil, nil, fmt.Errorf("assign seq for session %s: script returned %d results for %d ids", sid, len(r.seqs), len(ids[sid]))
			}
			out[sid] = r
		}
		if !noScript {
			return out, cold, nil
		}
		// Redis lost its script cache (a restart): load it and run the batch again.
		// Nothing was applied for the sessions that failed, and the script is
		// idempotent for those that ran (their ids now come back as repeats).
		if attempt > 0 {
			return nil, nil, errors.New("assign seq: redis keeps refusing the script")
		}
		if err := assignSeqScript.Load(ctx, s.rdb).Err(); err != nil {
			return nil, nil, fmt.Errorf("load seq script: %w", err)
		}
	}
}

// install loads state built from MongoDB.
func (s *stateStore) install(ctx context.Context, sess Session, recent []Message) error {
	var last int64
	args := []any{int(s.ttl.Seconds()), 0, sess.AgentID, string(sess.Status), boolFlag(sess.FirstResponseAt != nil)}
	for _, m := range recent {
		last = max(last, m.Seq)
		args = append(args, m.ClientMsgID, m.Seq)
	}
	args[1] = last
	if err := initStateScript.Run(ctx, s.rdb, []string{stateKey(sess.ID), idsKey(sess.ID)}, args...).Err(); err != nil {
		return fmt.Errorf("install state of session %s: %w", sess.ID, err)
	}
	return nil
}

// create installs the state of a brand-new session.
func (s *stateStore) create(ctx context.Context, sess Session) error {
	return s.install(ctx, sess, nil)
}

func boolFlag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// drop forgets a session's state so the next write reloads it from MongoDB.
func (s *stateStore) drop(ctx context.Context, sid string) error {
	if err := s.rdb.Del(ctx, stateKey(sid), idsKey(sid), recentKey(sid)).Err(); err != nil {
		return fmt.Errorf("drop state of session %s: %w", sid, err)
	}
	return nil
}

var setAgentScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'agent', ARGV[1], 'status', ARGV[2])
return 1
`)

// setAgent records the session's agent and status. A missing state is left missing:
// it is rebuilt from MongoDB, which already has the assignment, on the next write.
func (s *stateStore) setAgent(ctx context.Context, sid, agentID string, status Status) error {
	if err := setAgentScript.Run(ctx, s.rdb, []string{stateKey(sid)}, agentID, string(status)).Err(); err != nil {
		return fmt.Errorf("record agent of session %s: %w", sid, err)
	}
	return nil
}

// claimFirstResponse returns true exactly once per session: for its first agent message.
func (s *stateStore) claimFirstResponse(ctx context.Context, sid string) (bool, error) {
	n, err := s.rdb.HIncrBy(ctx, stateKey(sid), "fr", 1).Result()
	if err != nil {
		return false, fmt.Errorf("claim first response of %s: %w", sid, err)
	}
	return n == 1, nil
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

// recentAfter serves messages after afterSeq from the recent buffer when it holds
// afterSeq+1 onwards without a hole; ok is false when MongoDB must be read instead.
// Messages sequenced but not yet appended to the buffer are not waited for: they reach
// sockets live, and the REST history shows them a moment later.
func (s *stateStore) recentAfter(ctx context.Context, sid string, afterSeq int64, limit int) (msgs []frames.Message, ok bool, err error) {
	raw, err := s.rdb.LRange(ctx, recentKey(sid), 0, -1).Result()
	if err != nil {
		return nil, false, fmt.Errorf("read recent messages of %s: %w", sid, err)
	}
	want := afterSeq + 1
	for _, r := range raw {
		var m frames.Message
		if err := json.Unmarshal([]byte(r), &m); err != nil {
			return nil, false, nil
		}
		if m.Seq < want {
			continue
		}
		if m.Seq != want {
			return nil, false, nil // a hole: the buffer does not cover the range
		}
		msgs = append(msgs, m)
		want++
		if len(msgs) == limit {
			break
		}
	}
	return msgs, len(msgs) > 0, nil
}

// claim takes a once-per-session step (closing, rating) atomically across replicas;
// it reports false when someone took it before.
func (s *stateStore) claim(ctx context.Context, sid, step string) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, "hd:sess:{"+sid+"}:"+step, 1, 30*24*time.Hour).Result()
	if err != nil {
		return false, fmt.Errorf("claim %s of session %s: %w", step, sid, err)
	}
	return ok, nil
}

// unclaim gives a step back when it could not be completed.
func (s *stateStore) unclaim(ctx context.Context, sid, step string) {
	s.rdb.Del(ctx, "hd:sess:{"+sid+"}:"+step)
}
