package dispatch

// Every script receives the key prefix as ARGV[1] and builds its keys from it. All keys
// share the prefix, whose hash tag ("{routing}" by default) puts them in one Redis
// Cluster slot, so the scripts may touch any of them.
//
// Keys (after the prefix):
//
//	a:<agent>      hash   status (online|away|offline), max, groups (comma-separated),
//	                      seq (assignment sequence of the agent's last assignment), auto_away
//	h:<agent>      set    sessions the agent holds; its size is the agent's load
//	c:<agent>      zset   the agent's console connections, scored by expiry (ms)
//	ll:<group>     zset   agents of the group available for work (online, load < max),
//	                      scored load*2^40 + seq: least loaded first, then idle longest
//	rr:<group>     zset   the same agents scored seq: least recently assigned first
//	q:<group>      zset   waiting sessions scored (100-priority)*2^40 + arrival sequence
//	                      (sessions requeued from an agent who went offline: priority 101)
//	qt:<group>     zset   waiting sessions scored by enqueue time (ms)
//	qs             set    groups whose queue is not empty
//	s:<session>    hash   st (a = assigned, q = queued), agent, group, strat, prio, enq
//	online         set    agents online
//	pc             zset   agents whose connections must be checked, scored by due time
//	outbox         zset   SessionRouted records not yet published, scored by lease end
//	aseq, qseq     string counters for assignments and arrivals
//	rules_ver      string the rules version in force
//
// The group "" is everyone: every agent belongs to it.
const prelude = `
local P = ARGV[1]
local SCALE = 1099511627776
-- num renders an integer-valued number exactly (Lua's tostring keeps 14 digits).
local function num(x) return string.format('%.0f', x) end
local function groups_of(groups)
  local out = {''}
  for g in string.gmatch(groups or '', '[^,]+') do out[#out + 1] = g end
  return out
end
local function reindex(aid, groups, status, load, max, seq)
  local avail = status == 'online' and load < max
  for _, g in ipairs(groups_of(groups)) do
    if avail then
      redis.call('ZADD', P .. 'll:' .. g, num(load * SCALE + seq), aid)
      redis.call('ZADD', P .. 'rr:' .. g, num(seq), aid)
    else
      redis.call('ZREM', P .. 'll:' .. g, aid)
      redis.call('ZREM', P .. 'rr:' .. g, aid)
    end
  end
end
local function refresh(aid)
  local a = redis.call('HMGET', P .. 'a:' .. aid, 'status', 'max', 'groups', 'seq')
  if not a[1] then return end
  reindex(aid, a[3], a[1], redis.call('SCARD', P .. 'h:' .. aid), tonumber(a[2]) or 0, tonumber(a[4]) or 0)
end
local function reserve(aid, sid)
  local ak = P .. 'a:' .. aid
  local a = redis.call('HMGET', ak, 'status', 'max', 'groups')
  if a[1] ~= 'online' then return false end
  local hk = P .. 'h:' .. aid
  local max = tonumber(a[2]) or 0
  local load = redis.call('SCARD', hk)
  if redis.call('SISMEMBER', hk, sid) == 1 then return true end
  if load >= max then return false end
  redis.call('SADD', hk, sid)
  local seq = redis.call('INCR', P .. 'aseq')
  redis.call('HSET', ak, 'seq', num(seq))
  reindex(aid, a[3], 'online', load + 1, max, seq)
  return true
end
local function place(g, strat, sid)
  local key = P .. 'll:' .. g
  if strat == 'rr' then key = P .. 'rr:' .. g end
  for _ = 1, 16 do
    local r = redis.call('ZRANGE', key, 0, 0)
    if not r[1] then return nil end
    if reserve(r[1], sid) then return r[1] end
    redis.call('ZREM', P .. 'll:' .. g, r[1])
    redis.call('ZREM', P .. 'rr:' .. g, r[1])
  end
  return nil
end
local function dequeue(sid, g)
  redis.call('ZREM', P .. 'q:' .. g, sid)
  redis.call('ZREM', P .. 'qt:' .. g, sid)
  if redis.call('ZCARD', P .. 'q:' .. g) == 0 then redis.call('SREM', P .. 'qs', g) end
end
local function enqueue(sid, g, strat, prio, now)
  local qk = P .. 'q:' .. g
  local seq = redis.call('INCR', P .. 'qseq')
  redis.call('ZADD', qk, num((100 - prio) * SCALE + seq), sid)
  redis.call('ZADD', P .. 'qt:' .. g, num(now), sid)
  redis.call('SADD', P .. 'qs', g)
  local sk = P .. 's:' .. sid
  redis.call('DEL', sk)
  redis.call('HSET', sk, 'st', 'q', 'group', g, 'strat', strat, 'prio', num(prio), 'enq', num(now))
  return redis.call('ZRANK', qk, sid) + 1
end
local function position(sid, g)
  local r = redis.call('ZRANK', P .. 'q:' .. g, sid)
  if not r then return 0 end
  return r + 1
end
local function assigned(sid, aid, g)
  local sk = P .. 's:' .. sid
  redis.call('DEL', sk)
  redis.call('HSET', sk, 'st', 'a', 'agent', aid, 'group', g)
end
-- route assigns sid in group g, or queues it there. Nobody jumps the queue: when
-- sessions already wait in g, sid waits too (the drain serves them in order).
local function route(sid, g, strat, prio, now)
  if redis.call('ZCARD', P .. 'q:' .. g) == 0 then
    local aid = place(g, strat, sid)
    if aid then
      assigned(sid, aid, g)
      return {'assigned', aid, g, '0', '0'}
    end
  end
  local pos = enqueue(sid, g, strat, prio, now)
  local drain = '0'
  if redis.call('ZCARD', P .. 'll:' .. g) > 0 then drain = '1' end
  return {'queued', '', g, tostring(pos), drain}
end
-- unhold drops sid from whatever holds it (an agent or a queue) and returns the agent
-- that held it, if any.
local function unhold(sid)
  local sk = P .. 's:' .. sid
  local s = redis.call('HMGET', sk, 'st', 'agent', 'group')
  redis.call('DEL', sk)
  if s[1] == 'a' then
    if redis.call('SREM', P .. 'h:' .. s[2], sid) == 1 then refresh(s[2]) end
    return s[2]
  elseif s[1] == 'q' then
    dequeue(sid, s[3])
  end
  return nil
end
`

// assignScript routes a new session.
// ARGV: prefix, session, now, rules version, preferred agent ("" = none), group,
// strategy (ll|rr), priority.
// Returns {result, agent, group, position, drain} where result is assigned or queued,
// or {"stale", version} when the caller's rules are not the version in force.
const assignScript = prelude + `
local sid, now, rv, agent, g, strat, prio = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local cur = redis.call('GET', P .. 'rules_ver') or '0'
if cur ~= rv then return {'stale', cur} end
local s = redis.call('HMGET', P .. 's:' .. sid, 'st', 'agent', 'group')
if s[1] == 'a' then return {'assigned', s[2], s[3], '0', '0'} end
if s[1] == 'q' then return {'queued', '', s[3], tostring(position(sid, s[3])), '0'} end
if agent ~= '' and reserve(agent, sid) then
  assigned(sid, agent, g)
  return {'assigned', agent, g, '0', '0'}
end
return route(sid, g, strat, prio, now)
`

// releaseScript frees a session. ARGV: prefix, session, agent ("" = whoever holds it).
// Returns {result, agent, groups, waiting}: result is released (an agent's capacity
// was freed), dequeued (it was waiting) or none; waiting (1|0) says sessions wait in a
// queue the agent serves.
const releaseScript = prelude + `
local sid, aid = ARGV[2], ARGV[3]
local sk = P .. 's:' .. sid
local s = redis.call('HMGET', sk, 'st', 'agent', 'group')
if aid == '' then
  if s[1] == 'q' then
    redis.call('DEL', sk)
    dequeue(sid, s[3])
    return {'dequeued', '', '', '0'}
  end
  if s[1] ~= 'a' then return {'none', '', '', '0'} end
  aid = s[2]
end
if redis.call('SREM', P .. 'h:' .. aid, sid) == 0 then return {'none', '', '', '0'} end
if s[1] == 'a' and s[2] == aid then redis.call('DEL', sk) end
refresh(aid)
local groups = redis.call('HGET', P .. 'a:' .. aid, 'groups') or ''
local waiting = '0'
for _, g in ipairs(groups_of(groups)) do
  if redis.call('ZCARD', P .. 'q:' .. g) > 0 then waiting = '1' end
end
return {'released', aid, groups, waiting}
`

// transferScript moves a session to an agent or a group.
// ARGV: prefix, session, now, agent ("" = to the group), group, strategy, priority.
// Returns {result, agent, group, position, drain, previous agent, previous agent's
// groups}; result is assigned, queued, same (already with that agent) or unavailable
// (the agent cannot take it; nothing changed).
const transferScript = prelude + `
local sid, now, agent, g, strat, prio = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local s = redis.call('HMGET', P .. 's:' .. sid, 'st', 'agent')
local prev = ''
if s[1] == 'a' then prev = s[2] end
if agent ~= '' then
  if prev == agent then return {'same', agent, '', '0', '0', prev, ''} end
  local a = redis.call('HMGET', P .. 'a:' .. agent, 'status', 'max')
  if a[1] ~= 'online' or redis.call('SCARD', P .. 'h:' .. agent) >= (tonumber(a[2]) or 0) then
    return {'unavailable', '', '', '0', '0', prev, ''}
  end
  unhold(sid)
  reserve(agent, sid)
  assigned(sid, agent, g)
  local pg = ''
  if prev ~= '' then pg = redis.call('HGET', P .. 'a:' .. prev, 'groups') or '' end
  return {'assigned', agent, g, '0', '0', prev, pg}
end
unhold(sid)
local r = route(sid, g, strat, prio, now)
r[6] = prev
r[7] = ''
if prev ~= '' then r[7] = redis.call('HGET', P .. 'a:' .. prev, 'groups') or '' end
return r
`

// drainScript assigns waiting sessions to available agents, best first (highest
// priority, then longest waiting) across the given groups (every group with a queue
// when none is given), and records each assignment in the outbox.
// ARGV: prefix, now, limit, lease (ms), groups...
// Returns the outbox records: session US agent US group US enqueued ms US routed ms.
const drainScript = prelude + `
local now, limit, lease = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local groups = {}
if #ARGV > 4 then
  for i = 5, #ARGV do groups[#groups + 1] = ARGV[i] end
else
  groups = redis.call('SMEMBERS', P .. 'qs')
end
local out = {}
for _ = 1, limit do
  local best, bestScore, bestGroup = nil, nil, nil
  for _, g in ipairs(groups) do
    if redis.call('ZCARD', P .. 'll:' .. g) > 0 then
      local h = redis.call('ZRANGE', P .. 'q:' .. g, 0, 0, 'WITHSCORES')
      if h[1] then
        local sc = tonumber(h[2])
        if not best or sc < bestScore then best, bestScore, bestGroup = h[1], sc, g end
      end
    end
  end
  if not best then break end
  local sk = P .. 's:' .. best
  local s = redis.call('HMGET', sk, 'st', 'strat', 'enq')
  dequeue(best, bestGroup)
  if s[1] == 'q' then
    local aid = place(bestGroup, s[2] or 'll', best)
    if not aid then
      redis.call('ZADD', P .. 'q:' .. bestGroup, num(bestScore), best)
      redis.call('ZADD', P .. 'qt:' .. bestGroup, s[3] or num(now), best)
      redis.call('SADD', P .. 'qs', bestGroup)
      break
    end
    assigned(best, aid, bestGroup)
    local rec = table.concat({best, aid, bestGroup, s[3] or num(now), num(now)}, '\31')
    redis.call('ZADD', P .. 'outbox', num(now + lease), rec)
    out[#out + 1] = rec
  end
end
return out
`

// reclaimScript leases outbox records whose lease ended (their publisher died).
// ARGV: prefix, now, lease, limit.
const reclaimScript = prelude + `
local now, lease, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local recs = redis.call('ZRANGEBYSCORE', P .. 'outbox', '-inf', num(now), 'LIMIT', 0, limit)
for _, r in ipairs(recs) do redis.call('ZADD', P .. 'outbox', num(now + lease), r) end
return recs
`

// removeScript takes a waiting session out of its queue. ARGV: prefix, session.
// Returns 1 when it was waiting.
const removeScript = prelude + `
local sid = ARGV[2]
local sk = P .. 's:' .. sid
local s = redis.call('HMGET', sk, 'st', 'group')
if s[1] ~= 'q' then return 0 end
redis.call('DEL', sk)
dequeue(sid, s[2])
return 1
`

// positionScript reports where a session is. ARGV: prefix, session.
// Returns {state, agent, group, position, length, enqueued ms}; state is a, q or "".
const positionScript = prelude + `
local sid = ARGV[2]
local s = redis.call('HMGET', P .. 's:' .. sid, 'st', 'agent', 'group', 'enq')
if s[1] == 'q' then
  return {'q', '', s[3], tostring(position(sid, s[3])), tostring(redis.call('ZCARD', P .. 'q:' .. s[3])), s[4] or '0'}
end
if s[1] == 'a' then return {'a', s[2], s[3], '0', '0', '0'} end
return {'', '', '', '0', '0', '0'}
`

// overflowScript moves sessions that waited since before the cutoff to the fallback
// group's queue, keeping their priority and arrival order.
// ARGV: prefix, cutoff (ms), fallback group, limit. Returns the sessions moved.
const overflowScript = prelude + `
local cutoff, fb, limit = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local moved = {}
for _, g in ipairs(redis.call('SMEMBERS', P .. 'qs')) do
  if g ~= fb then
    local due = redis.call('ZRANGEBYSCORE', P .. 'qt:' .. g, '-inf', num(cutoff), 'LIMIT', 0, limit - #moved)
    for _, sid in ipairs(due) do
      local score = redis.call('ZSCORE', P .. 'q:' .. g, sid)
      local enq = redis.call('ZSCORE', P .. 'qt:' .. g, sid)
      dequeue(sid, g)
      if score then
        redis.call('ZADD', P .. 'q:' .. fb, score, sid)
        redis.call('ZADD', P .. 'qt:' .. fb, enq, sid)
        redis.call('SADD', P .. 'qs', fb)
        redis.call('HSET', P .. 's:' .. sid, 'group', fb, 'from', g)
        moved[#moved + 1] = sid
      end
    end
    if #moved >= limit then break end
  end
end
return moved
`

// upsertAgentScript creates or updates an agent's routing profile; a new agent is
// offline. ARGV: prefix, agent, max, groups (comma-separated).
// Returns {status, created}.
const upsertAgentScript = prelude + `
local aid, max, groups = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local ak = P .. 'a:' .. aid
local old = redis.call('HMGET', ak, 'status', 'groups')
local created = '0'
if not old[1] then
  created = '1'
  redis.call('HSET', ak, 'status', 'offline', 'seq', 0)
end
for _, g in ipairs(groups_of(old[2])) do
  redis.call('ZREM', P .. 'll:' .. g, aid)
  redis.call('ZREM', P .. 'rr:' .. g, aid)
end
redis.call('HSET', ak, 'max', max, 'groups', groups)
refresh(aid)
return {redis.call('HGET', ak, 'status'), created}
`

// statusScript changes an agent's presence. ARGV: prefix, agent, status, now.
// Returns {"missing"} for an unknown agent, else {previous status, released sessions...}:
// going offline releases every session the agent held and puts each back in the queue
// of the group it was assigned in, ahead of every new session (priority 101, which
// only this script uses), to be routed again.
const statusScript = prelude + `
local aid, st, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
local ak = P .. 'a:' .. aid
local prev = redis.call('HGET', ak, 'status')
if not prev then return {'missing'} end
redis.call('HSET', ak, 'status', st)
redis.call('HDEL', ak, 'auto_away')
if st == 'online' then redis.call('SADD', P .. 'online', aid) else redis.call('SREM', P .. 'online', aid) end
refresh(aid)
local out = {prev}
if st == 'offline' then
  local hk = P .. 'h:' .. aid
  local held = redis.call('SMEMBERS', hk)
  redis.call('DEL', hk)
  for _, sid in ipairs(held) do
    local s = redis.call('HMGET', P .. 's:' .. sid, 'agent', 'group')
    if s[1] == aid then enqueue(sid, s[2] or '', 'll', 101, now) end
    out[#out + 1] = sid
  end
end
return out
`

// connectScript records (or refreshes) a console connection. An agent who became
// away because their sockets dropped is online again.
// ARGV: prefix, agent, connection, now, ttl (ms), grace (ms).
// Returns {"missing"} or {"ok", restored (1|0)}.
const connectScript = prelude + `
local aid, conn, now, ttl, grace = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ak = P .. 'a:' .. aid
local a = redis.call('HMGET', ak, 'status', 'auto_away')
if not a[1] then return {'missing'} end
local ck = P .. 'c:' .. aid
redis.call('ZADD', ck, num(now + ttl), conn)
local last = redis.call('ZRANGE', ck, -1, -1, 'WITHSCORES')
redis.call('ZADD', P .. 'pc', num(tonumber(last[2]) + grace), aid)
if a[1] == 'away' and a[2] == '1' then
  redis.call('HSET', ak, 'status', 'online')
  redis.call('HDEL', ak, 'auto_away')
  redis.call('SADD', P .. 'online', aid)
  refresh(aid)
  return {'ok', '1'}
end
return {'ok', '0'}
`

// disconnectScript ends a console connection now; the agent is checked after the
// grace period. ARGV: prefix, agent, connection, now, grace (ms).
// Returns {"missing"} or {"ok"}.
const disconnectScript = prelude + `
local aid, conn, now, grace = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
if redis.call('EXISTS', P .. 'a:' .. aid) == 0 then return {'missing'} end
local ck = P .. 'c:' .. aid
redis.call('ZADD', ck, 'XX', num(now), conn)
local last = redis.call('ZRANGE', ck, -1, -1, 'WITHSCORES')
if last[1] then redis.call('ZADD', P .. 'pc', num(tonumber(last[2]) + grace), aid) end
return {'ok'}
`

// presenceScript ends the connections that expired more than the grace period ago,
// and makes online agents without any connection left away.
// ARGV: prefix, now, grace (ms), limit. Returns the agents made away.
const presenceScript = prelude + `
local now, grace, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local away = {}
for _, aid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'pc', '-inf', num(now), 'LIMIT', 0, limit)) do
  local ck = P .. 'c:' .. aid
  redis.call('ZREMRANGEBYSCORE', ck, '-inf', num(now - grace))
  local last = redis.call('ZRANGE', ck, -1, -1, 'WITHSCORES')
  if last[1] then
    redis.call('ZADD', P .. 'pc', num(tonumber(last[2]) + grace), aid)
  else
    redis.call('ZREM', P .. 'pc', aid)
    local ak = P .. 'a:' .. aid
    if redis.call('HGET', ak, 'status') == 'online' then
      redis.call('HSET', ak, 'status', 'away', 'auto_away', '1')
      redis.call('SREM', P .. 'online', aid)
      refresh(aid)
      away[#away + 1] = aid
    end
  end
end
return away
`

// rulesVersionScript raises the rules version in force to ARGV[2] (never lowers it).
// Returns the version in force.
const rulesVersionScript = prelude + `
local v = tonumber(ARGV[2])
local cur = tonumber(redis.call('GET', P .. 'rules_ver') or '0')
if v > cur then
  redis.call('SET', P .. 'rules_ver', num(v))
  return v
end
return cur
`
