// Package gateway is the public edge of Helmdesk: the REST API under /api/v1, the
// customer and agent WebSockets, and (in later versions) the console and widget.
//
// It owns identity: the organisation, user accounts with their argon2id password
// hashes, and bearer tokens (stored as SHA-256 digests). Everything else it reaches
// through the owning service: sessions and history via the session service's gRPC
// API, presence and capacity via the routing service. Messages sent over a socket are
// written to the inbound Kafka topic keyed by session id and acknowledged to the
// sender once Kafka has them on every in-sync replica; from then on the message cannot
// be lost. The gateway subscribes, per socket, to the Redis pub/sub channels the
// session service fans frames out on, and repairs any gap in a socket's sequence from
// history before delivering, so a client sees each message once, in order.
package gateway
