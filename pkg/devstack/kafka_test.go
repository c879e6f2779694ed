package devstack

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func TestKafkaPartitionedTopicSurvivesRestart(t *testing.T) {
	const (
		topic      = "conversations"
		partitions = 3
		perPart    = 4
	)
	dir := t.TempDir()

	k, err := StartKafka(dir, testLogger(t))
	if err != nil {
		t.Fatalf("start kafka: %v", err)
	}
	createTopic(t, k.Brokers(), topic, partitions)
	if got := partitionCount(t, k.Brokers(), topic); got != partitions {
		t.Fatalf("topic has %d partitions, want %d", got, partitions)
	}
	var msgs []kafka.Message
	for p := range partitions {
		for i := range perPart {
			msgs = append(msgs, kafka.Message{Partition: p, Value: fmt.Appendf(nil, "p%d-m%d", p, i)})
		}
	}
	writeMessages(t, k.Brokers(), topic, msgs...)
	if err := k.Close(); err != nil {
		t.Fatalf("close kafka: %v", err)
	}

	k, err = StartKafka(dir, testLogger(t))
	if err != nil {
		t.Fatalf("restart kafka: %v", err)
	}
	t.Cleanup(func() { _ = k.Close() })

	if got := partitionCount(t, k.Brokers(), topic); got != partitions {
		t.Fatalf("after restart topic has %d partitions, want %d", got, partitions)
	}
	for p := range partitions {
		var want []string
		for i := range perPart {
			want = append(want, fmt.Sprintf("p%d-m%d", p, i))
		}
		got := readValues(t, k.Brokers(), topic, p, perPart)
		if !slices.Equal(got, want) {
			t.Errorf("partition %d after restart = %v, want %v", p, got, want)
		}
	}

	// New writes after a restart continue the same log.
	writeMessages(t, k.Brokers(), topic, kafka.Message{Partition: 0, Value: []byte("after-restart")})
	got := readValues(t, k.Brokers(), topic, 0, perPart+1)
	if got[perPart] != "after-restart" {
		t.Errorf("message appended after restart = %q, want %q", got[perPart], "after-restart")
	}
}

func TestKafkaAutoCreatesTopics(t *testing.T) {
	k, err := StartKafka(t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatalf("start kafka: %v", err)
	}
	t.Cleanup(func() { _ = k.Close() })

	writeMessages(t, k.Brokers(), "auto", kafka.Message{Value: []byte("hello")})
	if got := partitionCount(t, k.Brokers(), "auto"); got != 1 {
		t.Errorf("auto-created topic has %d partitions, want 1", got)
	}
	if got := readValues(t, k.Brokers(), "auto", 0, 1); got[0] != "hello" {
		t.Errorf("read %q, want %q", got[0], "hello")
	}
}

// TestKafkaGroupOffsetsSurviveRestart checks that a consumer group resumes
// after its committed offset when the cluster restarts.
func TestKafkaGroupOffsetsSurviveRestart(t *testing.T) {
	const topic, group = "jobs", "workers"
	dir := t.TempDir()

	k, err := StartKafka(dir, testLogger(t))
	if err != nil {
		t.Fatalf("start kafka: %v", err)
	}
	createTopic(t, k.Brokers(), topic, 1)
	writeMessages(t, k.Brokers(), topic,
		kafka.Message{Value: []byte("one")},
		kafka.Message{Value: []byte("two")},
	)
	equal(t, consumeGroup(t, k.Brokers(), topic, group, 1), []string{"one"})
	if err := k.Close(); err != nil {
		t.Fatalf("close kafka: %v", err)
	}

	k, err = StartKafka(dir, testLogger(t))
	if err != nil {
		t.Fatalf("restart kafka: %v", err)
	}
	t.Cleanup(func() { _ = k.Close() })
	equal(t, consumeGroup(t, k.Brokers(), topic, group, 1), []string{"two"})
}

// Records older than the retention go, from memory and from the data folder;
// newer ones stay, and a restarted cluster starts its log after what was dropped.
func TestKafkaDropsExpiredRecords(t *testing.T) {
	const topic = "old-and-new"
	dir := t.TempDir()

	k, err := startKafka(dir, testLogger(t), time.Hour, 20*time.Millisecond)
	if err != nil {
		t.Fatalf("start kafka: %v", err)
	}
	createTopic(t, k.Brokers(), topic, 1)
	old := time.Now().Add(-2 * time.Hour)
	writeMessages(t, k.Brokers(), topic, kafka.Message{Value: []byte("old-1"), Time: old}, kafka.Message{Value: []byte("old-2"), Time: old})
	writeMessages(t, k.Brokers(), topic, kafka.Message{Value: []byte("new-1")}, kafka.Message{Value: []byte("new-2")})
	deadline := time.Now().Add(5 * time.Second)
	for firstOffset(t, k.Brokers(), topic) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("first offset = %d after 5 s, want 2 (the two expired records dropped)", firstOffset(t, k.Brokers(), topic))
		}
		time.Sleep(20 * time.Millisecond)
	}
	equal(t, readValues(t, k.Brokers(), topic, 0, 2), []string{"new-1", "new-2"})
	if err := k.Close(); err != nil {
		t.Fatalf("close kafka: %v", err)
	}

	k, err = startKafka(dir, testLogger(t), time.Hour, time.Hour)
	if err != nil {
		t.Fatalf("restart kafka: %v", err)
	}
	t.Cleanup(func() { _ = k.Close() })
	if got := firstOffset(t, k.Brokers(), topic); got != 2 {
		t.Fatalf("first offset after restart = %d, want 2", got)
	}
	equal(t, readValues(t, k.Brokers(), topic, 0, 2), []string{"new-1", "new-2"})
}

// firstOffset returns the log start offset of partition 0 of topic.
func firstOffset(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	conn, err := kafka.DialLeader(testContext(t), "tcp", brokers[0], topic, 0)
	if err != nil {
		t.Fatalf("dial leader of %s/0: %v", topic, err)
	}
	defer conn.Close()
	off, err := conn.ReadFirstOffset()
	if err != nil {
		t.Fatalf("read first offset of %s/0: %v", topic, err)
	}
	return off
}
