// Package cache connects to Redis (go-redis v9), which Helmdesk uses for presence,
// routing load, per-session state of the partition owner and pub/sub fan-out between
// services and gateways.
package cache
