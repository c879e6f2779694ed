package testdeps

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka starts an in-memory kfake cluster with one broker on 127.0.0.1 and
// returns its bootstrap addresses. Topics are created on first use with one
// partition, like a default Kafka broker; create them explicitly for more.
// The cluster is closed at cleanup.
func Kafka(t testing.TB) []string {
	t.Helper()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(1),
	)
	if err != nil {
		t.Fatalf("testdeps: start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}
