package report

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/helmdesk/helmdesk/loadtest/internal/check"
	"github.com/helmdesk/helmdesk/loadtest/internal/stats"
)

// healthy is a report of a clean run; cases change one thing.
func healthy() *Report {
	return &Report{
		RunID:           "abc123",
		Settings:        Settings{Target: "http://127.0.0.1:8080", Customers: 10, Agents: 2, RatePerCustomer: 1, MaxErrorRate: 0.01},
		CustomerToAgent: Direction{Sent: 100, Acked: 100, Delivered: 100},
		AgentToCustomer: Direction{Sent: 100, Acked: 100, Delivered: 100},
		Errors:          map[string]int64{},
		Operations:      1000,
		Check:           check.Result{Conversations: 10, Sent: 200, Acked: 200, Delivered: 200},
		Phases:          Phases{Drained: true, Stopped: "duration"},
	}
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Report)
		fails  []string // substrings of the expected failures, in order
	}{
		{name: "clean run passes", change: func(*Report) {}},
		{
			// Any breach the checker found fails the run.
			name:   "lost message",
			change: func(r *Report) { r.Check.Lost = 1 },
			fails:  []string{"checker: 1 lost"},
		},
		{
			name:   "duplicated and reordered",
			change: func(r *Report) { r.Check.Duplicated, r.Check.Reordered = 2, 3 },
			fails:  []string{"2 duplicated, 3 reordered"},
		},
		{
			name:   "history mismatch",
			change: func(r *Report) { r.Check.History.Mismatched = 1 },
			fails:  []string{"history: 0 missing, 0 duplicated, 0 gaps, 1 mismatched"},
		},
		{
			// Unacknowledged messages are not a breach.
			name:   "unacked only",
			change: func(r *Report) { r.Check.Unacked = 5 },
		},
		{
			// Nothing delivered one way: the run proves nothing.
			name:   "vacuous",
			change: func(r *Report) { r.AgentToCustomer.Delivered = 0 },
			fails:  []string{"vacuous"},
		},
		{
			// Deliveries still pending at the end of the drain.
			name:   "not drained",
			change: func(r *Report) { r.Phases.Drained = false },
			fails:  []string{"did not drain"},
		},
		{
			// An interrupted run skips the drain; it fails as incomplete, not as undrained.
			name:   "interrupted",
			change: func(r *Report) { r.Phases.Drained, r.Phases.Stopped = false, "interrupted" },
			fails:  []string{"interrupted"},
		},
		{
			name:   "socket never resumed",
			change: func(r *Report) { r.Reconnects.NotResumed = 1 },
			fails:  []string{"1 dropped sockets never resumed"},
		},
		{
			// 11 HTTP/frame errors in 1000 operations is over 1%.
			name:   "error rate over the limit",
			change: func(r *Report) { r.Errors["http:create_session:503"] = 6; r.Errors["frame:unavailable"] = 5 },
			fails:  []string{"error rate 1.1000%"},
		},
		{
			// Socket drops are judged by their outcome, not counted in the rate.
			name:   "socket errors not counted",
			change: func(r *Report) { r.Errors["socket:drop:close 1012"] = 500; r.Errors["http:login:401"] = 10 },
		},
		{
			name:   "chaos restart failed",
			change: func(r *Report) { r.Chaos = []ChaosEvent{{Process: "gateway", Error: "gateway not ready after 90s"}} },
			fails:  []string{"chaos on gateway: gateway not ready"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := healthy()
			tt.change(r)
			r.Evaluate(r.Settings.MaxErrorRate)
			if r.Pass != (len(tt.fails) == 0) || len(r.Failures) != len(tt.fails) {
				t.Fatalf("pass=%v failures=%q, want failures matching %q", r.Pass, r.Failures, tt.fails)
			}
			for i, want := range tt.fails {
				if !strings.Contains(r.Failures[i], want) {
					t.Errorf("failure %d = %q, want it to contain %q", i, r.Failures[i], want)
				}
			}
		})
	}
}

func TestErrorRate(t *testing.T) {
	r := healthy()
	r.Errors = map[string]int64{"http:create_session:503": 3, "frame:unavailable": 2, "socket:dial:refused": 40}
	r.Operations = 500
	r.Evaluate(0.5)
	if r.CountedErrors != 5 || r.ErrorRate != 0.01 || !r.Pass {
		t.Fatalf("counted %d rate %v pass %v", r.CountedErrors, r.ErrorRate, r.Pass)
	}
}

func TestText(t *testing.T) {
	var h stats.Histogram
	h.Record(12_300_000) // 12.3 ms
	r := healthy()
	r.CustomerToAgent.Latency = h.Summary()
	r.CustomerToAgent.DeliveredPerS = 1000
	r.Errors["frame:unavailable"] = 1
	r.Chaos = []ChaosEvent{{Process: "session", KilledAtS: 5, ReadyAtS: 6.2, DowntimeMS: 1200}}
	r.Reconnects.AfterChaos = ChaosResumes{Clients: 10, Within2s: 9, Share: 0.9, SlowestMS: 2500}
	r.Memory = []Memory{{Process: "dev", SteadyRSS: 100 << 20, BaselineRSS: 50 << 20, PeakRSS: 120 << 20, Connections: 100, BytesPerConn: 1 << 20, DeltaPerConn: 512 << 10}}
	r.Check.Lost = 1
	r.Check.Problems = []check.Problem{{SessionID: "s1", Kind: "lost", Side: "customer", ClientMsgID: "c7", Detail: "acknowledged but never received by the agent"}}
	r.Evaluate(0.01)
	var buf bytes.Buffer
	r.WriteText(&buf)
	out := buf.String()
	for _, want := range []string{
		"helmdesk load test abc123 — FAIL",
		"customer→agent sent 100",
		"p50 12.3ms",
		"1000.0/s steady",
		"frame:unavailable=1",
		"kill session at 5.0s, ready again after 1.20s",
		"9 of 10 clients (90.0%) resumed within 2s",
		"dev: CPU 0% of a core (steady), RSS 100.0 MiB",
		"1024.0 KiB/conn (512.0 KiB/conn over baseline)",
		"lost 1,",
		`problem       lost session s1 side customer seq 0 id "c7"`,
		"FAILED        checker: 1 lost",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
}

func TestJSON(t *testing.T) {
	r := healthy()
	r.Evaluate(0.01)
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"customer_to_agent", "agent_to_customer", "check", "errors", "reconnects", "pass", "phases", "sessions"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	c := back["check"].(map[string]any)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range c {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range []string{"lost", "duplicated", "reordered", "gaps", "unacked"} {
		if !slices.Contains(keys, k) {
			t.Errorf("check JSON lacks %q (has %v)", k, keys)
		}
	}
	if back["pass"] != true {
		t.Errorf("pass = %v", back["pass"])
	}
}
