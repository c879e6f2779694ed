// Package devstack runs the infrastructure helmdesk depends on inside the
// current process (Redis as a child process when redis-server is installed), for
// `helmdesk dev`.
//
// Each dependency speaks its real wire protocol on a loopback port, so the
// production clients (mongo-driver, kafka-go, go-redis) talk to it unchanged:
//
//   - MongoDB: FerretDB v1 embedded, storing data in SQLite files
//     (see [StartMongo]), plus two helpers working on those files: an index
//     for lookups by _id (idindex.go) and a checkpointer that keeps the
//     write-ahead log's checkpoints off the writers' path (walcheckpoint.go).
//     Its SQLite connections wait for the write lock in Go, woken by the
//     commit that frees it, rather than in SQLite's sleeping busy handler
//     (sqlitewait.go).
//     It implements a subset of MongoDB; see
//     docs/toolchain.md for what is missing (transactions, change streams,
//     TTL indexes, $lookup, ...).
//   - Kafka: a kfake cluster with one broker that persists its log to disk
//     and keeps a day of records (see [StartKafka]).
//   - Redis: a redis-server child process when one is installed (see
//     [StartRedisServer]), with an append-only file fsynced every second; it dies
//     with the process. Otherwise (or with [RedisEmbedded]) miniredis in-process,
//     with a JSON snapshot written every five seconds and on
//     Close and restored at start (see [StartRedis]). miniredis itself keeps
//     everything in memory; the snapshot covers strings, hashes (including
//     field TTLs), lists, sets, sorted sets and streams (entries only, not
//     consumer groups), plus key TTLs. HyperLogLogs are not persisted.
//
// [Start] runs all three under one data directory:
//
//	<DataDir>/.lock        flock held while the stack runs
//	<DataDir>/mongo/       FerretDB SQLite databases
//	<DataDir>/kafka/       kfake segments and metadata
//	<DataDir>/redis/       redis-server append-only file
//	<DataDir>/redis.json   miniredis snapshot
//
// Data survives restarts of the process. Nothing here is meant for
// production: it trades durability and performance for zero setup.
package devstack
