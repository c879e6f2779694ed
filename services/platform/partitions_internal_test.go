package platform

import "testing"

func TestInboundPartitions(t *testing.T) {
	for _, tc := range []struct {
		name       string
		configured int
		dev        bool
		want       int
	}{
		{"a deployment chooses", 0, false, DefaultInboundPartitions},
		{"helmdesk dev chooses", 0, true, DevInboundPartitions},
		{"configured, deployment", 7, false, 7},
		{"configured, helmdesk dev", 7, true, 7},
	} {
		if got := InboundPartitions(tc.configured, tc.dev); got != tc.want {
			t.Errorf("%s: InboundPartitions(%d, %v) = %d, want %d", tc.name, tc.configured, tc.dev, got, tc.want)
		}
	}
	if DefaultInboundPartitions != 12 || DevInboundPartitions != 4 {
		t.Errorf("defaults %d and %d, want 12 and 4 (docs/configuration.md and docs/benchmarks.md say so)", DefaultInboundPartitions, DevInboundPartitions)
	}
	cfg, err := DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.InboundPartitions != 0 {
		t.Errorf("default --kafka-inbound-partitions = %d, want 0 (choose)", cfg.InboundPartitions)
	}
}

func TestInboundPartitionsBounds(t *testing.T) {
	checkFlagBounds(t, "kafka-inbound-partitions", map[string]bool{"0": true, "1": true, "1024": true, "-1": false, "1025": false, "many": false})
}
