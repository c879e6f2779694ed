// Package fault defines Helmdesk's typed errors: a kind that maps to one gRPC code and
// one HTTP status, a stable machine-readable code for API clients, and a message a
// person can act on. Services return them from domain code; the transports translate
// them in exactly one place each (pkg/rpc for gRPC, the gateway for HTTP).
package fault
