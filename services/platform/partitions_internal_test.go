package platform

import (
	"strings"
	"testing"

	"github.com/helmdesk/helmdesk/pkg/config"
)

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
	for _, tc := range []struct {
		value string
		ok    bool
	}{{"0", true}, {"1", true}, {"1024", true}, {"-1", false}, {"1025", false}, {"many", false}} {
		var c Config
		s := config.NewSet("test")
		c.Declare(s)
		_, err := s.Parse([]string{"--kafka-inbound-partitions=" + tc.value}, func(string) string { return "" })
		if tc.ok && err != nil {
			t.Errorf("--kafka-inbound-partitions=%s: %v", tc.value, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "kafka-inbound-partitions")) {
			t.Errorf("--kafka-inbound-partitions=%s: err = %v, want one naming the setting", tc.value, err)
		}
	}
}
