package routing

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/services/routing/internal/dispatch"
	"github.com/helmdesk/helmdesk/services/routing/internal/rules"
)

// BenchmarkAssign measures Assign against a real redis-server with the seed rules
// and 100 online agents (20 premium, 80 default_group, capacity 100 each). Every
// session is released after it is assigned, so the load stays steady.
//
//   - parallel: closed loop, GOMAXPROCS×4 callers; ns/op is one Assign plus its
//     Release; assign-p50/p99 are the latencies of Assign alone.
//   - paced_2000_per_s: open loop, one Assign every 500 µs (2,000/s) whatever the
//     latency, measured from the scheduled start (no coordinated omission).
func BenchmarkAssign(b *testing.B) {
	e := newEnv(b)
	s := e.replica(Config{})
	s.now = time.Now
	for _, g := range []string{"premium", "default_group"} {
		if _, err := s.createGroup(ctx, g); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 100 {
		group := "default_group"
		if i < 20 {
			group = "premium"
		}
		id := fmt.Sprintf("agent-%03d", i)
		if _, err := s.upsertAgent(ctx, agentProfile{AgentID: id, MaxSessions: 100, Groups: []string{group}}); err != nil {
			b.Fatal(err)
		}
		if _, err := s.setAgentStatus(ctx, id, dispatch.Online); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.putRules(ctx, []rules.Rule{
		{Condition: "user_level == 'VIP'", Action: "assign_to_group('premium')"},
		{Condition: "true", Action: "round_robin('default_group')"},
	}, "bench"); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	one := func() (time.Duration, error) {
		n := seq.Add(1)
		level := "normal"
		if n%5 == 0 {
			level = "VIP"
		}
		sid := fmt.Sprintf("bench-%d", n)
		start := time.Now()
		a, err := s.assign(ctx, assignInput{SessionID: sid, Input: rules.Input{Channel: "web", Profile: map[string]any{"user_level": level}}})
		lat := time.Since(start)
		if err != nil {
			return 0, err
		}
		if !a.Assigned {
			return 0, fmt.Errorf("%s was queued", sid)
		}
		if _, err := s.release(ctx, sid, a.AgentID); err != nil {
			return 0, err
		}
		return lat, nil
	}

	b.Run("parallel", func(b *testing.B) {
		var mu sync.Mutex
		var all []time.Duration
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			var mine []time.Duration
			for pb.Next() {
				lat, err := one()
				if err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, lat)
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
		b.StopTimer()
		reportPercentiles(b, all)
	})

	b.Run("paced_2000_per_s", func(b *testing.B) {
		const interval = 500 * time.Microsecond
		lats := make([]time.Duration, b.N)
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			due := start.Add(time.Duration(i) * interval)
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			wg.Go(func() {
				// Count from the scheduled start: starting late is latency too.
				delay := max(time.Since(due), 0)
				lat, err := one()
				if err != nil {
					b.Error(err)
					return
				}
				lats[i] = delay + lat
			})
		}
		wg.Wait()
		b.StopTimer()
		reportPercentiles(b, lats)
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "assign/s")
	})
}

func reportPercentiles(b *testing.B, lats []time.Duration) {
	if len(lats) == 0 {
		return
	}
	slices.Sort(lats)
	at := func(q float64) float64 {
		return float64(lats[min(int(q*float64(len(lats))), len(lats)-1)].Nanoseconds())
	}
	b.ReportMetric(at(0.50), "assign-p50-ns")
	b.ReportMetric(at(0.99), "assign-p99-ns")
	b.ReportMetric(float64(lats[len(lats)-1].Nanoseconds()), "assign-max-ns")
}
