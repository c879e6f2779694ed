package platform_test

import (
	"context"
	"io"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/helmdesk/helmdesk/pkg/events"
	"github.com/helmdesk/helmdesk/services/platform"
	"github.com/helmdesk/helmdesk/services/platform/platformtest"
)

// With the default configuration a platform creates its topics with
// DefaultInboundPartitions (helmdesk dev asks for DevInboundPartitions instead).
func TestTopicsGetTheDefaultPartitions(t *testing.T) {
	dev := platformtest.Start(t, t.TempDir(), io.Discard, nil)
	conn, err := kafka.DialContext(context.Background(), "tcp", dev.KafkaBrokers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, topic := range []string{events.TopicInbound, events.TopicRouting, events.TopicEvents} {
		parts, err := conn.ReadPartitions(topic)
		if err != nil {
			t.Fatalf("partitions of %s: %v", topic, err)
		}
		if len(parts) != platform.DefaultInboundPartitions {
			t.Errorf("%s has %d partitions, want %d", topic, len(parts), platform.DefaultInboundPartitions)
		}
	}
}
