// Package testdeps gives integration tests real dependencies speaking their
// real protocols on loopback, each cleaned up with t.Cleanup:
//
//   - [Mongo]: an embedded FerretDB (SQLite) and a fresh database name.
//   - [Kafka]: a fresh in-memory kfake cluster.
//   - [Redis]: a real redis-server child process (Debian package
//     redis-server; `make test` installs it). The test fails, never skips,
//     when the binary is missing.
//   - [MiniRedis]: an embedded miniredis, for tests that explicitly want it.
//
// Typical use:
//
//	func TestStore(t *testing.T) {
//		uri, db := testdeps.Mongo(t)
//		client, err := mongo.Connect(options.Client().ApplyURI(uri))
//		...
//		t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
//		store := NewStore(client.Database(db))
//		...
//	}
//
// Register client cleanups after calling the helper so they run first:
// FerretDB, for example, waits 3 seconds for connected clients when it stops.
//
// Every helper starts its own server, so tests may run in parallel. Start
// plus cleanup on a 2-core machine: FerretDB about 4 ms, kfake under 1 ms,
// redis-server about 15 ms, miniredis under 1 ms.
package testdeps
