// Package dispatch is the shared state of routing in Redis: agents' presence, load
// and availability per group, queues, console connections and the outbox of
// sessions routed from a queue. Every change is one Lua script (see lua.go for the
// key layout), which is what makes capacity reservations and queue drains safe
// across any number of routing replicas.
package dispatch
