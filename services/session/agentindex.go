package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/helmdesk/helmdesk/pkg/fault"
)

// The agent index lists, per agent, the sessions assigned to them, so that an agent's
// console can load its conversations (on every reconnect, which after a gateway
// restart means every agent at once) by id instead of by a query on agent_id and
// status. MongoDB serves that query from an index, but FerretDB, which the embedded
// stack runs, scans the collection for anything but an _id lookup.
//
// The index is a hash in Redis: one field per session id, plus a marker field with
// the time it was completed. It may hold sessions that are no longer the agent's
// (entries are added when a session is assigned and dropped lazily when a read finds
// them stale), but a complete index does not miss one: an assignment is written to
// MongoDB first and added to the index afterwards if the index exists, and a rebuild
// creates the index before it queries MongoDB, so every assignment is seen by one or
// the other. Concurrent rebuilds each hold a token; only the last one started may
// mark the index complete. A missing or incomplete index (new, expired, lost with
// Redis) is rebuilt on the next read, and so is one completed more than
// agentIndexFresh ago, which bounds how long an index restored from an older Redis
// snapshot can be wrong.
const (
	agentIndexComplete = "~complete"
	agentIndexBuilding = "~building"
	agentIndexTTL      = 7 * 24 * time.Hour
	agentIndexBuildTTL = time.Minute
	agentIndexFresh    = time.Hour
	// agentIndexMax is the most sessions a rebuild reads; an agent with more is served
	// from MongoDB every time.
	agentIndexMax = 2000
)

func agentIndexKey(agentID string) string { return "hd:agent:{" + agentID + "}:sessions" }

// addToAgentIndexScript adds a session to an existing index. ARGV: session id, ttl ms.
var addToAgentIndexScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// startAgentIndexScript starts the index afresh, held by a token. ARGV: token, ttl ms.
var startAgentIndexScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '` + agentIndexBuilding + `', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// finishAgentIndexScript adds what a rebuild read and marks the index complete, if
// the rebuild still holds it. ARGV: token, ttl ms, now ms, then session ids.
var finishAgentIndexScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], '` + agentIndexBuilding + `') ~= ARGV[1] then return 0 end
for i = 4, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], 1) end
redis.call('HDEL', KEYS[1], '` + agentIndexBuilding + `')
redis.call('HSET', KEYS[1], '` + agentIndexComplete + `', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// indexAssigned adds sid to agentID's index (when the index exists).
func (s *stateStore) indexAssigned(ctx context.Context, agentID, sid string) error {
	err := addToAgentIndexScript.Run(ctx, s.rdb, []string{agentIndexKey(agentID)}, sid, agentIndexTTL.Milliseconds()).Err()
	if err != nil {
		// Better no index (rebuilt on the next read) than one missing this session.
		if derr := s.rdb.Del(ctx, agentIndexKey(agentID)).Err(); derr != nil {
			return fmt.Errorf("index session %s under agent %s: %w (and could not drop the index: %v)", sid, agentID, err, derr)
		}
	}
	return nil
}

// assignedTo returns the sessions assigned to agentID, newest first, at most limit
// (and whether there are more). With summary, sessions are read from their state in
// Redis where it is there (see SessionSummary).
func (s *Service) assignedTo(ctx context.Context, agentID string, limit int, summary bool) ([]Session, bool, error) {
	key := agentIndexKey(agentID)
	fields, err := s.state.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, false, fmt.Errorf("read the sessions of agent %s: %w", agentID, err)
	}
	done, _ := strconv.ParseInt(fields[agentIndexComplete], 10, 64)
	if done <= 0 || time.Since(time.UnixMilli(done)) >= agentIndexFresh {
		out, err := s.rebuildAgentIndex(ctx, agentID)
		if err != nil {
			return nil, false, err
		}
		return firstN(out, limit)
	}
	ids := make([]string, 0, len(fields))
	for id := range fields {
		if !strings.HasPrefix(id, "~") {
			ids = append(ids, id)
		}
	}
	var cached map[string]Session
	if summary {
		if cached, err = s.state.summaries(ctx, ids); err != nil {
			return nil, false, err
		}
	}
	out := make([]Session, 0, len(ids))
	var stale []string
	for _, id := range ids {
		sess, ok := cached[id]
		var err error
		if !ok {
			sess, err = s.repo.getSession(ctx, id)
		}
		if err != nil && !fault.Is(err, fault.NotFound) {
			return nil, false, err
		}
		if err != nil || sess.AgentID != agentID || sess.Status != StatusAssigned {
			stale = append(stale, id)
			continue
		}
		out = append(out, sess)
	}
	if len(stale) > 0 {
		_ = s.state.rdb.HDel(ctx, key, stale...).Err() // lazily; a later read retries
	}
	slices.SortFunc(out, func(a, b Session) int { return strings.Compare(b.ID, a.ID) })
	return firstN(out, limit)
}

// firstN returns the first n of list and whether there were more.
func firstN(list []Session, n int) ([]Session, bool, error) {
	if len(list) > n {
		return list[:n], true, nil
	}
	return list, false, nil
}

// rebuildAgentIndex reads agentID's assigned sessions from MongoDB (newest first) and
// stores them as the agent's index.
func (s *Service) rebuildAgentIndex(ctx context.Context, agentID string) ([]Session, error) {
	key := agentIndexKey(agentID)
	token := uuid.NewString()
	// Created before the query: assignments from now on are added to it by their writers.
	if err := startAgentIndexScript.Run(ctx, s.state.rdb, []string{key}, token, agentIndexBuildTTL.Milliseconds()).Err(); err != nil {
		return nil, fmt.Errorf("start the session index of agent %s: %w", agentID, err)
	}
	list, err := s.repo.listSessions(ctx, sessionFilter{AgentID: agentID, Status: StatusAssigned, Limit: agentIndexMax + 1})
	if err != nil {
		return nil, err
	}
	if len(list) > agentIndexMax {
		return list, nil // too many to index: stays incomplete, served from MongoDB
	}
	args := make([]any, 0, len(list)+3)
	args = append(args, token, agentIndexTTL.Milliseconds(), time.Now().UnixMilli())
	for _, sess := range list {
		args = append(args, sess.ID)
	}
	if err := finishAgentIndexScript.Run(ctx, s.state.rdb, []string{key}, args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store the session index of agent %s: %w", agentID, err)
	}
	return list, nil
}
