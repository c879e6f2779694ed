package report

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/helmdesk/helmdesk/loadtest/internal/check"
	"github.com/helmdesk/helmdesk/loadtest/internal/stats"
)

// Settings is the run's configuration as the report shows it.
type Settings struct {
	Target           string   `json:"target"`
	Layout           string   `json:"layout,omitempty"`
	Customers        int      `json:"customers"`
	Agents           int      `json:"agents"`
	AgentMaxSessions int      `json:"agent_max_sessions"`
	RatePerCustomer  float64  `json:"rate_per_customer"`
	Jitter           float64  `json:"jitter"`
	Duration         string   `json:"duration"`
	Messages         int      `json:"messages,omitempty"`
	RampRate         float64  `json:"ramp_rate"`
	DrainTimeout     string   `json:"drain_timeout"`
	TextBytes        int      `json:"text_bytes"`
	Chaos            []string `json:"chaos,omitempty"`
	ChaosInterval    string   `json:"chaos_interval,omitempty"`
	ChaosCycles      int      `json:"chaos_cycles,omitempty"`
	MaxErrorRate     float64  `json:"max_error_rate"`
}

// Phases are the run's durations in seconds.
type Phases struct {
	Setup   float64 `json:"setup_s"`  // admin, agents
	Ramp    float64 `json:"ramp_s"`   // customers connecting
	Steady  float64 `json:"steady_s"` // every customer connected, sending
	Drain   float64 `json:"drain_s"`  // sending stopped, waiting for deliveries
	Check   float64 `json:"check_s"`  // REST cross-check
	Total   float64 `json:"total_s"`  // all of it
	Drained bool    `json:"drained"`  // every delivery arrived before the drain timeout
	Stopped string  `json:"stopped"`  // why sending stopped: duration, messages, interrupted
}

// Sessions is what happened to customer sessions.
type Sessions struct {
	Created       int64         `json:"created"`
	Failed        int64         `json:"failed"`
	PerSecond     float64       `json:"per_second"` // created / time from first to last creation
	Unassigned    int           `json:"unassigned"` // never got an agent
	CreateLatency stats.Summary `json:"create_latency"`
}

// Direction is the traffic one way.
type Direction struct {
	Sent          int64         `json:"sent"`      // distinct messages written
	Acked         int64         `json:"acked"`     // acknowledged by the server
	Delivered     int64         `json:"delivered"` // received by the other side (first time)
	SentPerS      float64       `json:"sent_per_s"`
	DeliveredPerS float64       `json:"delivered_per_s"`
	Latency       stats.Summary `json:"latency"` // first send → the other side's socket receiving it
	// SteadyLatency is Latency of the messages first sent in the steady phase (every
	// customer connected, before sending stopped): the ramp's session creations and
	// the drain do not weigh on it.
	SteadyLatency stats.Summary `json:"steady_latency"`
}

// Reconnects is how sockets dropped and came back.
type Reconnects struct {
	Drops        int64            `json:"drops"`     // sockets that dropped
	Customers    int64            `json:"customers"` // customer reconnects that succeeded
	Agents       int64            `json:"agents"`    // agent reconnects that succeeded
	Resumes      int64            `json:"resumes"`   // resumed frames received
	HistoryFetch int64            `json:"history_fetches"`
	NotResumed   int              `json:"not_resumed"` // drops that never resumed before the end
	ResumeTime   stats.Summary    `json:"resume_time"` // reconnect succeeded → resumed
	Causes       map[string]int64 `json:"causes,omitempty"`
	// Unresumed describes (up to 10) drops that never resumed.
	Unresumed []string `json:"unresumed,omitempty"`
	// AfterChaos: of the clients that dropped because of a chaos kill, how many had
	// resumed within 2 s of the restarted process being ready.
	AfterChaos ChaosResumes `json:"after_chaos"`
}

// ChaosResumes is the share of clients resumed quickly after a restart.
type ChaosResumes struct {
	Clients  int     `json:"clients"`
	Within2s int     `json:"within_2s"`
	Share    float64 `json:"share"`
	// Slowest is the longest time from readiness to a client's resumed frame.
	SlowestMS float64 `json:"slowest_ms"`
	// Where the time after readiness went, per client: Arrival is from readiness to
	// the start of the dial that succeeded (0 for a client already dialling; the
	// client's own reconnect backoff and failed dials), Dial is that dial (TCP
	// connect, the upgrade, authentication and the greeting), Resume from the
	// connected socket to its resumed frame.
	Arrival stats.Summary `json:"arrival"`
	Dial    stats.Summary `json:"dial"`
	Resume  stats.Summary `json:"resume"`
}

// ChaosEvent is one kill and restart, in seconds since the start of the run. The
// restarted process is ready from when its readiness check answered 200 or, if
// earlier, when it served the first reconnecting client (ReadyzAtS is then the
// check's answer).
type ChaosEvent struct {
	Process    string  `json:"process"`
	KilledAtS  float64 `json:"killed_at_s"`
	ReadyAtS   float64 `json:"ready_at_s,omitempty"`
	ReadyzAtS  float64 `json:"readyz_at_s,omitempty"`
	DowntimeMS float64 `json:"downtime_ms,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// Memory is a target process's resident memory.
type Memory struct {
	Process     string `json:"process"`
	BaselineRSS int64  `json:"baseline_rss"` // after setup, before customers
	SteadyRSS   int64  `json:"steady_rss"`   // when sending stopped
	PeakRSS     int64  `json:"peak_rss"`
	Connections int    `json:"connections"` // sockets open when SteadyRSS was read
	// BytesPerConn is SteadyRSS / Connections; DeltaPerConn is
	// (SteadyRSS - BaselineRSS) / Connections, the cost of a connection itself.
	BytesPerConn float64 `json:"bytes_per_conn"`
	DeltaPerConn float64 `json:"delta_bytes_per_conn"`
	// CPUPercent is the CPU the process used during the steady phase, in percent of
	// one core.
	CPUPercent float64 `json:"steady_cpu_percent"`
}

// Host is the machine the run shared with the target.
type Host struct {
	CPUs         int    `json:"cpus"`
	LoadAvgStart string `json:"loadavg_start"` // 1, 5 and 15 minutes, before the run
	LoadAvgEnd   string `json:"loadavg_end"`
}

// Tool is the load tester's own footprint.
type Tool struct {
	PeakRSS    int64   `json:"peak_rss"`
	Goroutines int     `json:"peak_goroutines"`
	CPUPercent float64 `json:"steady_cpu_percent"` // of one core, during the steady phase
}

// Tick is one second of the run, for seeing what chaos did when.
type Tick struct {
	T             float64    `json:"t_s"`            // seconds since the start
	CustomersLive int64      `json:"customers_live"` // connected and resumed
	AgentsLive    int64      `json:"agents_live"`
	Sent          [2]int64   `json:"sent"`      // this second: customer→agent, agent→customer
	Delivered     [2]int64   `json:"delivered"` // this second, by direction
	P99MS         [2]float64 `json:"p99_ms"`    // latency of the messages delivered this second
	AckP99MS      float64    `json:"ack_p99_ms"`
	Errors        int64      `json:"errors"` // all kinds, this second
}

// Report is everything a run measured and its verdict.
type Report struct {
	RunID     string    `json:"run_id"`
	StartedAt time.Time `json:"started_at"`
	LogDir    string    `json:"log_dir,omitempty"`
	Settings  Settings  `json:"settings"`
	Phases    Phases    `json:"phases"`
	Sessions  Sessions  `json:"sessions"`

	CustomerToAgent Direction     `json:"customer_to_agent"`
	AgentToCustomer Direction     `json:"agent_to_customer"`
	AckLatency      stats.Summary `json:"ack_latency"`
	FirstResponse   stats.Summary `json:"first_response"`

	// Errors by kind: "http:<operation>:<status or cause>", "frame:<code>",
	// "socket:<what>:<cause>". Operations counts HTTP requests and messages written.
	Errors map[string]int64 `json:"errors"`
	// ErrorExamples holds the first message of each error kind.
	ErrorExamples map[string]string `json:"error_examples,omitempty"`
	Operations    int64             `json:"operations"`
	// CountedErrors are the HTTP and error-frame errors, which -max-error-rate bounds;
	// socket errors are judged by their outcome (every dropped socket must resume).
	CountedErrors int64   `json:"counted_errors"`
	ErrorRate     float64 `json:"error_rate"`

	Reconnects Reconnects   `json:"reconnects"`
	Chaos      []ChaosEvent `json:"chaos,omitempty"`
	Memory     []Memory     `json:"memory,omitempty"`
	Tool       Tool         `json:"tool"`
	Host       Host         `json:"host"`

	Check check.Result `json:"check"`

	Timeline []Tick `json:"timeline,omitempty"`
	// Traces are the socket histories (connects, drops, resumes, error frames, first
	// message of each connection) of the conversations in Check.Problems, keyed
	// "<session id> <side>".
	Traces map[string][]string `json:"traces,omitempty"`

	Pass     bool     `json:"pass"`
	Failures []string `json:"failures,omitempty"`
}

// Counted reports whether an error kind counts toward the error rate.
func Counted(kind string) bool {
	return strings.HasPrefix(kind, "http:") || strings.HasPrefix(kind, "frame:")
}

// Evaluate sets Pass and Failures: the run fails when the checker found a breach,
// when no message was delivered (a vacuous run), when a dropped socket never
// resumed, or when the counted error rate exceeds maxErrorRate.
func (r *Report) Evaluate(maxErrorRate float64) {
	r.CountedErrors = 0
	for k, n := range r.Errors {
		if Counted(k) {
			r.CountedErrors += n
		}
	}
	r.ErrorRate = 0
	if r.Operations > 0 {
		r.ErrorRate = float64(r.CountedErrors) / float64(r.Operations)
	}
	var f []string
	c := r.Check
	if c.Lost > 0 || c.Duplicated > 0 || c.Reordered > 0 || c.Gaps > 0 {
		f = append(f, fmt.Sprintf("checker: %d lost, %d duplicated, %d reordered, %d gaps", c.Lost, c.Duplicated, c.Reordered, c.Gaps))
	}
	if r.Phases.Stopped == "interrupted" {
		f = append(f, "the run was interrupted: the checker's verdict covers only what was seen before")
	} else if !r.Phases.Drained {
		f = append(f, fmt.Sprintf("deliveries did not drain within %s: undelivered acknowledged messages count as lost, though some may only be stuck in a backlog (a longer -drain-timeout tells them apart)", r.Settings.DrainTimeout))
	}
	if h := c.History; h.Missing+h.Duplicated+h.Gaps+h.Mismatched > 0 {
		f = append(f, fmt.Sprintf("history: %d missing, %d duplicated, %d gaps, %d mismatched", h.Missing, h.Duplicated, h.Gaps, h.Mismatched))
	}
	if r.CustomerToAgent.Delivered == 0 || r.AgentToCustomer.Delivered == 0 {
		f = append(f, fmt.Sprintf("vacuous: delivered %d customer→agent and %d agent→customer messages", r.CustomerToAgent.Delivered, r.AgentToCustomer.Delivered))
	}
	if r.Reconnects.NotResumed > 0 {
		f = append(f, fmt.Sprintf("%d dropped sockets never resumed", r.Reconnects.NotResumed))
	}
	if r.ErrorRate > maxErrorRate {
		f = append(f, fmt.Sprintf("error rate %.4f%% (%d of %d operations) over -max-error-rate %.4f%%", 100*r.ErrorRate, r.CountedErrors, r.Operations, 100*maxErrorRate))
	}
	for _, ev := range r.Chaos {
		if ev.Error != "" {
			f = append(f, fmt.Sprintf("chaos on %s: %s", ev.Process, ev.Error))
		}
	}
	r.Failures = f
	r.Pass = len(f) == 0
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func lat(s stats.Summary) string {
	if s.Count == 0 {
		return "n/a"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)", fmtMS(s.P50), fmtMS(s.P90), fmtMS(s.P99), fmtMS(s.Max), s.Count)
}

func fmtMS(ms float64) string {
	switch {
	case ms >= 10000:
		return fmt.Sprintf("%.1fs", ms/1000)
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	case ms >= 100:
		return fmt.Sprintf("%.0fms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.2fms", ms)
	}
}

// MiB formats bytes.
func MiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// WriteText writes the human-readable summary.
func (r *Report) WriteText(w io.Writer) {
	s := r.Settings
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	p("helmdesk load test %s — %s", r.RunID, verdict)
	target := s.Target
	if s.Layout != "" {
		target += " (started: " + s.Layout + " layout)"
	}
	p("  target        %s", target)
	p("  load          %d customers × %.3g msg/s (±%.0f%%), %d agents (max_sessions %d), ramp %.0f/s, steady %s",
		s.Customers, s.RatePerCustomer, 100*s.Jitter, s.Agents, s.AgentMaxSessions, s.RampRate, s.Duration)
	ph := r.Phases
	drained := "drained"
	if !ph.Drained {
		drained = "NOT drained"
	}
	p("  phases        setup %.1fs, ramp %.1fs, steady %.1fs (stopped: %s), drain %.1fs (%s), check %.1fs, total %.1fs",
		ph.Setup, ph.Ramp, ph.Steady, ph.Stopped, ph.Drain, drained, ph.Check, ph.Total)
	p("  sessions      %d created (%.1f/s), %d failed, %d without an agent; create %s", r.Sessions.Created, r.Sessions.PerSecond, r.Sessions.Failed, r.Sessions.Unassigned, lat(r.Sessions.CreateLatency))
	for _, d := range []struct {
		name string
		d    Direction
	}{{"customer→agent", r.CustomerToAgent}, {"agent→customer", r.AgentToCustomer}} {
		p("  %-14s sent %d (%.1f/s steady), acked %d, delivered %d (%.1f/s steady)", d.name, d.d.Sent, d.d.SentPerS, d.d.Acked, d.d.Delivered, d.d.DeliveredPerS)
		p("  %-14s latency %s", "", lat(d.d.Latency))
		p("  %-14s steady  %s", "", lat(d.d.SteadyLatency))
	}
	p("  ack           %s", lat(r.AckLatency))
	p("  first reply   %s", lat(r.FirstResponse))
	rc := r.Reconnects
	p("  reconnects    %d drops; %d customer and %d agent reconnects, %d resumes (%d via history), %d never resumed; resume %s",
		rc.Drops, rc.Customers, rc.Agents, rc.Resumes, rc.HistoryFetch, rc.NotResumed, lat(rc.ResumeTime))
	for _, u := range rc.Unresumed {
		p("  not resumed   %s", u)
	}
	if rc.AfterChaos.Clients > 0 {
		p("  after chaos   %d of %d clients (%.1f%%) resumed within 2s of the restarted process being ready (slowest %s after)",
			rc.AfterChaos.Within2s, rc.AfterChaos.Clients, 100*rc.AfterChaos.Share, fmtMS(rc.AfterChaos.SlowestMS))
		if rc.AfterChaos.Dial.Count > 0 {
			p("                from ready: arrival %s", lat(rc.AfterChaos.Arrival))
			p("                dial %s", lat(rc.AfterChaos.Dial))
			p("                resume %s", lat(rc.AfterChaos.Resume))
		}
	}
	for _, ev := range r.Chaos {
		if ev.Error != "" {
			p("  chaos         kill %s at %.1fs: %s", ev.Process, ev.KilledAtS, ev.Error)
		} else {
			line := fmt.Sprintf("  chaos         kill %s at %.1fs, ready again after %s", ev.Process, ev.KilledAtS, fmtMS(ev.DowntimeMS))
			if ev.ReadyzAtS > 0 {
				line += fmt.Sprintf(" (first client served; its readiness check answered %s later)", fmtMS(1000*(ev.ReadyzAtS-ev.ReadyAtS)))
			}
			p("%s", line)
		}
	}
	errs := "none"
	if len(r.Errors) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			parts = append(parts, fmt.Sprintf("%s=%d", k, r.Errors[k]))
		}
		errs = strings.Join(parts, " ")
	}
	p("  errors        %s", errs)
	p("  error rate    %.4f%% (%d counted errors / %d operations; limit %.4f%%)", 100*r.ErrorRate, r.CountedErrors, r.Operations, 100*s.MaxErrorRate)
	for _, m := range r.Memory {
		line := fmt.Sprintf("  target        %s: CPU %.0f%% of a core (steady), RSS %s at steady state (baseline %s, peak %s)", m.Process, m.CPUPercent, MiB(m.SteadyRSS), MiB(m.BaselineRSS), MiB(m.PeakRSS))
		if m.Connections > 0 {
			line += fmt.Sprintf(", %d connections → %.1f KiB/conn", m.Connections, m.BytesPerConn/1024)
			if m.DeltaPerConn > 0 {
				line += fmt.Sprintf(" (%.1f KiB/conn over baseline)", m.DeltaPerConn/1024)
			}
		}
		p("%s", line)
	}
	p("  load tool     CPU %.0f%% of a core (steady), peak RSS %s, peak goroutines %d", r.Tool.CPUPercent, MiB(r.Tool.PeakRSS), r.Tool.Goroutines)
	if r.Host.CPUs > 0 {
		p("  host          %d CPUs, load average %s before, %s after (other work on the host skews latency)", r.Host.CPUs, r.Host.LoadAvgStart, r.Host.LoadAvgEnd)
	}
	c := r.Check
	p("  checker       %d conversations, %d messages (%d acked, %d delivered): lost %d, duplicated %d, reordered %d, gaps %d; unacked %d (+%d unacked yet delivered), resent %d, undeliverable %d",
		c.Conversations, c.Sent, c.Acked, c.Delivered, c.Lost, c.Duplicated, c.Reordered, c.Gaps, c.Unacked, c.UnackedDelivered, c.Resent, c.Undeliverable)
	h := c.History
	p("  history       %d conversations (%d messages) cross-checked over REST: missing %d, duplicated %d, gaps %d, mismatched %d",
		h.Checked, h.Messages, h.Missing, h.Duplicated, h.Gaps, h.Mismatched)
	for i, pr := range c.Problems {
		if i == 10 {
			p("  …             %d more examples in the JSON report", len(c.Problems)-10)
			break
		}
		p("  problem       %s session %s side %s seq %d id %q: %s", pr.Kind, pr.SessionID, pr.Side, pr.Seq, pr.ClientMsgID, pr.Detail)
	}
	if r.LogDir != "" {
		p("  process logs  %s", r.LogDir)
	}
	for _, f := range r.Failures {
		p("  FAILED        %s", f)
	}
}
