package platform

import (
	"strings"
	"testing"

	"github.com/helmdesk/helmdesk/pkg/config"
)

func TestGCPercent(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name       string
		configured int
		services   []string
		getenv     func(string) string
		start      int
		steady     int
	}{
		{"gateway alone: Go's default while it starts, then 50", 0, []string{"gateway"}, env(), 100, 50},
		{"gateway with others", 0, []string{"routing", "session", "gateway"}, env(), 0, 0},
		{"session alone", 0, []string{"session"}, env(), 0, 0},
		{"GOGC wins over the automatic choice", 0, []string{"gateway"}, env("GOGC", "200"), 0, 0},
		{"configured wins over GOGC, from the start", 80, []string{"gateway"}, env("GOGC", "200"), 80, 80},
	} {
		if start, steady := gcPercent(tc.configured, tc.services, tc.getenv); start != tc.start || steady != tc.steady {
			t.Errorf("%s: gcPercent = %d then %d, want %d then %d", tc.name, start, steady, tc.start, tc.steady)
		}
	}
}

func TestGCPercentBounds(t *testing.T) {
	checkFlagBounds(t, "gc-percent", map[string]bool{"0": true, "10": true, "1000": true, "5": false, "-1": false, "1001": false, "lots": false})
}

// checkFlagBounds parses --flag=value for each value and checks that it is accepted
// when ok, and otherwise refused with an error naming the flag.
func checkFlagBounds(t *testing.T, flag string, values map[string]bool) {
	t.Helper()
	for value, ok := range values {
		var c Config
		s := config.NewSet("test")
		c.Declare(s)
		_, err := s.Parse([]string{"--" + flag + "=" + value}, func(string) string { return "" })
		if ok && err != nil {
			t.Errorf("--%s=%s: %v", flag, value, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), flag)) {
			t.Errorf("--%s=%s: err = %v, want one naming the setting", flag, value, err)
		}
	}
}
