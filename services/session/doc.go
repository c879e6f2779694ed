// Package session is the session service. It owns customers, sessions
// (conversations), their messages and the per-session sequence.
//
// Storage: MongoDB collections customers, sessions and messages; Redis holds the hot
// per-session state of the partition owner (last seq, assigned agent, recent client
// message ids) and a short buffer of recent message frames for fast resume.
//
// Flow: CreateSession (gRPC) stores the session, publishes chat_created and asks the
// routing service to assign it. Messages arrive on the inbound Kafka topic keyed by
// session id; the member of the "session" consumer group that owns a partition is the
// single writer for its sessions: it deduplicates by (session_id, client_msg_id),
// assigns seq 1, 2, 3, … per session, persists each fetched batch with one insert,
// fans the frames out over Redis pub/sub to the gateways (before the insert when the
// batch's seqs continue what this member stored, after it otherwise), publishes
// message_created, and only then commits the offsets. Assignments the routing service makes later
// (queue drains) arrive on the routing topic and are applied the same way.
package session
