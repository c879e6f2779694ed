// Package events is Helmdesk's event bus on Kafka (segmentio/kafka-go).
//
// Every record is a protobuf Envelope (id, type, time, source, subject, payload) keyed
// by its subject, so all records about one session land on one partition in order.
// The Producer waits for all in-sync replicas (RequiredAcks=all). Concurrent publishes
// are written together, one grouped write at a time, as one produce request per
// partition leader, uncompressed (chat records are small and a batch per partition
// holds a few of them). The Consumer joins a consumer group, runs one goroutine per assigned
// partition, hands each fetched batch to a Handler and commits the batch's offsets only
// after the handler succeeded, so a crash replays rather than loses records; handlers
// must therefore be idempotent. Trace context travels in record headers.
package events
