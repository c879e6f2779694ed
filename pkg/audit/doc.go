// Package audit is Helmdesk's append-only, tamper-evident audit log, kept in MongoDB.
//
// Every admin action (and every failed login or denied access) becomes an [Entry]: who
// ([Actor]), what ([Event.Action], "agent.create"), on what ([Target]), a small
// summary and before/after maps, where from (source IP, user agent) and the result.
// The gateway owns the log; other services report actions to it.
//
// # The chain
//
// Entries are numbered 1, 2, 3, … with no gaps (the sequence number is the document's
// _id, written as 20 zero-padded digits so that string order is numeric order and
// FerretDB looks it up by primary key) and chained: each entry stores the hash of the previous one (prev_hash) and its
// own hash = HMAC-SHA256(chain key, canonical encoding of the entry including
// prev_hash), hex. The canonical encoding is a JSON object with a fixed field order,
// map keys sorted, times as RFC 3339 UTC strings at millisecond precision (what BSON
// keeps), integers (and integral floats below 2^53) in decimal and other floats in
// shortest form, so it is the same before and after a BSON round trip. Entries carry
// the id of the chain key that signed them ([Config.Keys]: first active, older ones
// kept to verify), so the chain key can be rotated.
//
// Appending needs no transactions (FerretDB has none): a writer computes entry n+1
// from the last entry it knows and inserts it with _id n+1. When another replica got
// there first the insert fails with a duplicate key; the writer re-reads the tip and
// tries again. The unique _id therefore keeps one chain without forks or gaps however
// many gateway replicas append. Within one process appends are serialised.
//
// Besides the entries, a state collection (<collection>_state) holds two anchors,
// each MACed with the chain key: the head (the highest sequence number appended, so
// deleting the newest entries is detected) and the purge checkpoint (the sequence
// number and hash of the last purged entry, where verification starts).
//
// [Log.Verify] walks the chain and reports the first broken link: an edited entry
// (hash mismatch), a deleted entry (sequence gap), a replaced or reordered entry
// (prev_hash mismatch), a deleted tail (the head is ahead of the last entry) or a
// forged anchor. An attacker with write access to MongoDB but without the chain key
// cannot hide a change, except by deleting newest entries together with rolling the
// head back to a copy taken earlier, or by deleting the whole log; record
// [Log.Head] outside MongoDB (logs, metrics) now and then to close that gap.
//
// # Retention
//
// [Log.Purge] deletes entries older than the retention (default and minimum 180 days)
// from the start of the chain only (an old entry after a newer one is kept). It first
// verifies the part it will delete and refuses to purge a broken chain, then appends
// an "audit.purge" entry, moves the checkpoint, and deletes. Each step is safe to
// repeat after a crash. Run it periodically from one replica (several are harmless).
// There is no TTL index, which FerretDB lacks and which would break the chain.
//
// # Reading
//
// [Log.List] pages newest first with an opaque cursor and filters by actor, action,
// target, time and result; [Log.Export] streams the matching entries oldest first as
// JSON Lines or CSV.
package audit
