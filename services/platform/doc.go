// Package platform composes Helmdesk's services into one process. It owns the
// settings every process shares (listen addresses, MongoDB, Kafka, Redis, logging),
// opens the connections once, creates the Kafka topics, starts a gRPC server for the
// services that expose one, points every gRPC client either at the in-process server
// or at the address configured for a remote service, and runs everything until the
// context ends, then shuts down in order: stop taking work (readiness fails, sockets
// get a close frame telling clients to resume), drain, close connections.
//
// `helmdesk serve <service>...` and `helmdesk dev` both use it; dev mode only fills
// the dependency addresses from the embedded stack.
package platform
