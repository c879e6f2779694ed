// Package routing is the routing service: it decides which agent takes a session.
//
// # What it owns
//
//   - Groups (skill groups) — MongoDB `routing_groups`. Created explicitly with
//     CreateGroup; nothing is seeded, not even `default_group`: rules and agent
//     profiles that name a missing group are rejected with `unknown_group`, so a typo
//     cannot strand sessions in a queue nobody serves. Sessions no rule matches go to
//     everyone (the group "", which every agent belongs to), so routing works with no
//     group at all.
//   - Agent routing profiles (max_sessions 1..100, default 5; groups) — MongoDB
//     `routing_agents`, mirrored into Redis for the hot path (and re-mirrored from
//     MongoDB when Redis has lost them).
//   - Presence (online, away, offline), console connections and load — Redis only.
//   - Routing rules — MongoDB `routing_rules`, one document per version (every PutRules
//     adds a version; history is kept). The version in force is also in Redis, so
//     every replica notices a change on its next Assign (see internal/rules for the
//     rule language).
//   - Queues and the outbox of routed sessions — Redis.
//
// # How a session is routed
//
// Assign evaluates the rules in order (first match wins; no match or no rules means
// round_robin over everyone) and then runs one Lua script that reserves capacity on
// an agent or queues the session. Because a reservation is a single script over the
// shared Redis state, no agent ever exceeds max_sessions, whatever the number of
// routing replicas; the service itself keeps no state. The script also checks that
// the caller evaluated the rules version in force (else the caller reloads and
// retries), and that the session is not placed already (Assign is idempotent).
//
// Agent choice: assign_to_group and queue take the least loaded available agent
// (ties: the one assigned least recently, i.e. idle longest); round_robin takes the
// agent assigned least recently. An agent is available when online with load below
// max_sessions. assign_to_agent and assign_to_last_agent try that agent first and
// fall back to their group (assign_to_agent without a fallback group falls back to
// round robin over everyone). A session queues when nobody is available, and also
// when others already wait in its queue (nobody jumps the queue).
//
// Queues are ordered by priority (0..100, higher first), then arrival. Whenever
// capacity appears — Release, an agent going online or reconnecting, UpsertAgent —
// the service drains the queues that agent serves: another script pops the best
// waiting session, reserves an agent and writes the assignment to an outbox; the
// service then publishes a session_routed event (eventsv1.SessionRouted, subject =
// session id) on the helmdesk.routing topic and removes it from the outbox. If a
// replica dies between the two, the outbox lease runs out and another replica's
// sweep publishes it: delivery is at least once, so consumers must be idempotent.
//
// Overflow (off by default): a session waiting longer than
// HELMDESK_ROUTING_QUEUE_OVERFLOW_AFTER moves, with its priority and arrival order,
// to the queue of HELMDESK_ROUTING_QUEUE_OVERFLOW_GROUP ("" = every agent).
//
// # Presence
//
// SetAgentStatus sets online, away or offline. Away keeps the agent's sessions but
// gives them no new ones. Offline releases every session the agent held, puts each
// back in the queue of the group it was assigned in, ahead of every new session —
// so other agents pick them up and session_routed events follow — and returns their
// ids in the response.
//
// The gateway reports console sockets with AgentConnected (on open, and then as a
// heartbeat at least every third of HELMDESK_ROUTING_CONNECTION_TTL) and
// AgentDisconnected. When an online agent has had no open socket for
// HELMDESK_ROUTING_PRESENCE_GRACE (default 30 s) the sweep makes them away, keeping
// their sessions; their next AgentConnected makes them online again. An agent who
// chose away or offline is never changed by connections.
//
// # What the session service does
//
//   - On a new session or a bot hand-off: Assign (retrying is safe). assigned=true
//     means the agent is reserved; otherwise the session waits and a session_routed
//     event follows when it gets an agent.
//   - Consume helmdesk.routing (type session_routed) and apply each event idempotently.
//   - On close, or when a waiting customer leaves: Release(session_id) with agent_id
//     empty — it frees the agent or leaves the queue, whichever applies, and is a
//     no-op the second time. RemoveFromQueue only leaves a queue.
//   - On transfer: Transfer(to_agent_id or to_group).
//
// # Files
//
// config.go (settings), service.go (New, Run, drains and event publishing),
// routing.go (the use cases), store.go (MongoDB), grpc.go (the gRPC port: protobuf
// conversion only), internal/rules (CEL rules), internal/dispatch (the Redis board
// and its Lua scripts).
package routing
