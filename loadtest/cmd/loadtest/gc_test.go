package main

import "testing"

const meminfo = `MemTotal:       24598388 kB
MemFree:         9811016 kB
MemAvailable:   21384176 kB
Buffers:          412340 kB
Cached:         10512880 kB
`

func TestMemAvailableReadsTheKernelsFigure(t *testing.T) {
	if got, want := memAvailable([]byte(meminfo)), int64(21384176)<<10; got != want {
		t.Fatalf("memAvailable = %d, want %d", got, want)
	}
	for _, bad := range []string{
		"",
		"MemTotal:       24598388 kB\n",
		"MemAvailable:   lots kB\n",
		"MemAvailable:   21384176 MB\n",
		"MemAvailable:   -5 kB\n",
		"MemAvailable:\n",
	} {
		if got := memAvailable([]byte(bad)); got != 0 {
			t.Errorf("memAvailable(%q) = %d, want 0", bad, got)
		}
	}
}

func TestGCSettings(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	const gib = int64(1) << 30
	for _, tc := range []struct {
		name      string
		env       map[string]string
		available int64
		percent   int
		limit     int64
	}{
		{"plenty of memory: no target, half of it as the limit", nil, 20 * gib, -1, 10 * gib},
		{"just enough memory", nil, 2 * gib, -1, gib},
		{"small host: a high target", nil, 2*gib - 1, fallbackGCPercent, 0},
		{"unknown memory: a high target", nil, 0, fallbackGCPercent, 0},
		{"GOGC set: Go's settings", map[string]string{"GOGC": "100"}, 20 * gib, 0, 0},
		{"GOMEMLIMIT set: Go's settings", map[string]string{"GOMEMLIMIT": "4GiB"}, 20 * gib, 0, 0},
	} {
		percent, limit := gcSettings(env(tc.env), tc.available)
		if percent != tc.percent || limit != tc.limit {
			t.Errorf("%s: gcSettings = %d, %d; want %d, %d", tc.name, percent, limit, tc.percent, tc.limit)
		}
	}
}
