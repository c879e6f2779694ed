package load

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/helmdesk/helmdesk/loadtest/internal/check"
	"github.com/helmdesk/helmdesk/loadtest/internal/report"
	"github.com/helmdesk/helmdesk/loadtest/internal/stats"
	"github.com/helmdesk/helmdesk/loadtest/internal/target"
)

type targetChaos = target.ChaosEvent

// fetchHistories reads the REST history of the conversations to cross-check (all,
// or an evenly spread sample of HistoryCheck), with the admin token, page by page.
func (r *runner) fetchHistories(ctx context.Context) map[*conv][]check.Received {
	convs := r.customerList()
	n := r.cfg.HistoryCheck
	if n < 0 || n > len(convs) {
		n = len(convs)
	}
	if n == 0 {
		return nil
	}
	pick := make([]*conv, 0, n)
	for i := range n {
		pick = append(pick, convs[i*len(convs)/n])
	}
	out := make(map[*conv][]check.Received, n)
	var mu sync.Mutex
	work := make(chan *conv)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for c := range work {
				msgs, err := r.admin.AllMessages(ctx, c.sid, 0)
				r.m.ops.Add(1)
				if err != nil {
					if ctx.Err() == nil {
						r.m.errf("http:history_check:"+httpCause(err), err)
					}
					continue
				}
				h := make([]check.Received, len(msgs))
				for i, m := range msgs {
					h[i] = check.Received{Seq: m.Seq, ClientMsgID: m.ClientMsgID, Sender: m.Sender.Type}
				}
				mu.Lock()
				out[c] = h
				mu.Unlock()
			}
		})
	}
	for _, c := range pick {
		select {
		case work <- c:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if len(out) < len(pick) {
		r.logf("history cross-check covered %d of %d conversations", len(out), len(pick))
	}
	return out
}

// check runs the checker over every conversation the tool created.
func (r *runner) check(history map[*conv][]check.Received) check.Result {
	var res check.Result
	for _, c := range r.customerList() {
		c.mu.Lock()
		cv := check.Conversation{SessionID: c.sid, Present: [2]bool{true, c.agent != nil}}
		for s := range c.sides {
			sent := make([]check.Sent, len(c.sides[s].sent))
			for i, m := range c.sides[s].sent {
				sent[i] = check.Sent{ID: m.id, Acked: m.acked, Attempts: m.attempts}
			}
			cv.Sent[s] = sent
			cv.Received[s] = c.sides[s].recv
		}
		c.mu.Unlock()
		if h, ok := history[c]; ok {
			cv.History, cv.HistoryChecked = h, true
		}
		res.Add(cv)
	}
	return res
}

type fillInput struct {
	start, rampStart, rampEnd, sendEnd, drainStart, drainEnd, checkEnd time.Time
	atRampEnd, atSendEnd                                               snapshot
	drained                                                            bool
	stopped                                                            string
	baseline, steadyMem                                                map[string]int64
	steadyConns                                                        int
	loadStart                                                          string
	cpuFrom, cpuTo                                                     map[string]time.Duration
	capacity                                                           int
}

func secs(a, b time.Time) float64 { return b.Sub(a).Seconds() }

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// fill writes everything measured into the report.
func (r *runner) fill(rep *report.Report, in fillInput) {
	cfg := r.cfg
	rep.Settings = report.Settings{
		Target: r.url, Layout: string(cfg.Layout), Customers: cfg.Customers, Agents: cfg.Agents, AgentMaxSessions: in.capacity,
		RatePerCustomer: cfg.Rate, Jitter: cfg.Jitter, Duration: cfg.Duration.String(), Messages: cfg.Messages, RampRate: cfg.RampRate,
		DrainTimeout: cfg.DrainTimeout.String(), TextBytes: cfg.TextBytes, Chaos: cfg.Chaos, MaxErrorRate: cfg.MaxErrorRate,
	}
	if len(cfg.Chaos) > 0 {
		rep.Settings.ChaosInterval, rep.Settings.ChaosCycles = cfg.ChaosInterval.String(), cfg.ChaosCycles
	}
	rep.Phases = report.Phases{
		Setup: secs(in.start, in.rampStart), Ramp: secs(in.rampStart, in.rampEnd), Steady: secs(in.rampEnd, in.sendEnd),
		Drain: secs(in.drainStart, in.drainEnd), Check: secs(in.drainEnd, in.checkEnd), Total: secs(in.start, time.Now()),
		Drained: in.drained, Stopped: in.stopped,
	}

	m := r.m
	m.mu.Lock()
	created := m.sessionsCreated.Load()
	rep.Sessions = report.Sessions{Created: created, Failed: m.sessionsFailed.Load(), CreateLatency: m.create.Summary()}
	if created > 1 {
		rep.Sessions.PerSecond = rate(created-1, m.lastCreate.Sub(m.firstCreate))
	}
	maps.Copy(rep.Errors, m.errs)
	rep.ErrorExamples = maps.Clone(m.examples)
	episodes := append([]*episode(nil), m.episodes...)
	m.mu.Unlock()
	for _, c := range r.customerList() {
		c.mu.Lock()
		if c.agent == nil {
			rep.Sessions.Unassigned++
		}
		c.mu.Unlock()
	}

	window := in.atSendEnd.at.Sub(in.atRampEnd.at)
	from := in.atRampEnd
	if window < time.Second {
		// No steady window to speak of (a short run): rate over the whole send phase.
		from, window = snapshot{at: in.rampStart}, in.atSendEnd.at.Sub(in.rampStart)
	}
	dir := func(s int) report.Direction {
		return report.Direction{
			Sent: m.sent[s].Load(), Acked: m.acked[s].Load(), Delivered: m.delivered[s].Load(),
			SentPerS:      rate(in.atSendEnd.sent[s]-from.sent[s], window),
			DeliveredPerS: rate(in.atSendEnd.delivered[s]-from.delivered[s], window),
			Latency:       m.latency[s].Summary(),
			SteadyLatency: m.steadyLat[s].Summary(),
		}
	}
	rep.CustomerToAgent, rep.AgentToCustomer = dir(int(customer)), dir(int(agentS))
	rep.AckLatency = m.ack.Summary()
	rep.FirstResponse = m.firstReply.Summary()
	rep.Operations = m.ops.Load()

	// Reconnects, and how fast clients came back after each restart.
	rc := report.Reconnects{
		Drops: int64(len(episodes)), Customers: m.reconnects[customer].Load(), Agents: m.reconnects[agentS].Load(),
		Resumes: m.resumes.Load(), HistoryFetch: m.historyFetches.Load(), ResumeTime: m.resume.Summary(), Causes: map[string]int64{},
	}
	r.chaosMu.Lock()
	events := append([]targetEvent(nil), toEvents(r.chaos)...)
	r.chaosMu.Unlock()
	m.mu.Lock()
	servedBeforeReady(events, episodes)
	rc.Drops = 0
	for _, ep := range episodes {
		rc.Drops += int64(ep.drops)
		rc.Causes[ep.who+":"+ep.cause]++
		if ep.resumedAt.IsZero() {
			rc.NotResumed++
			if len(rc.Unresumed) < 10 {
				u := fmt.Sprintf("%s %s: dropped at %.1fs (%s, %d drops)", ep.who, ep.client, secs(in.start, ep.droppedAt), ep.cause, ep.drops)
				if !ep.connectedAt.IsZero() {
					u += fmt.Sprintf(", reconnected at %.1fs, no resumed frame since", secs(in.start, ep.connectedAt))
				} else {
					u += ", never reconnected"
				}
				rc.Unresumed = append(rc.Unresumed, u)
			}
		}
	}
	rc.AfterChaos = afterChaos(events, episodes)
	m.mu.Unlock()
	rep.Reconnects = rc
	for _, ev := range events {
		ce := report.ChaosEvent{Process: ev.process, KilledAtS: secs(in.start, ev.killed)}
		if ev.err != nil {
			ce.Error = ev.err.Error()
		}
		if !ev.ready.IsZero() {
			ce.ReadyAtS = secs(in.start, ev.ready)
			ce.DowntimeMS = float64(ev.ready.Sub(ev.killed).Microseconds()) / 1000
			if ev.readyz.After(ev.ready) {
				ce.ReadyzAtS = secs(in.start, ev.readyz)
			}
		}
		rep.Chaos = append(rep.Chaos, ce)
	}

	// Memory of the target's processes.
	r.memMu.Lock()
	names := make([]string, 0, len(r.peakRSS))
	for k := range r.peakRSS {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		mem := report.Memory{Process: name, BaselineRSS: in.baseline[name], SteadyRSS: in.steadyMem[name], PeakRSS: r.peakRSS[name],
			CPUPercent: cpuPercent(in, name)}
		// Connections end at the gateway: per-connection figures only make sense for
		// the process that holds the sockets.
		if holdsSockets(name) {
			mem.Connections = in.steadyConns
			if in.steadyConns > 0 {
				mem.BytesPerConn = float64(mem.SteadyRSS) / float64(in.steadyConns)
				mem.DeltaPerConn = float64(mem.SteadyRSS-mem.BaselineRSS) / float64(in.steadyConns)
			}
		}
		rep.Memory = append(rep.Memory, mem)
	}
	rep.Tool = report.Tool{PeakRSS: r.toolPeak, Goroutines: r.goPeak, CPUPercent: cpuPercent(in, "")}
	rep.Host = report.Host{CPUs: runtime.NumCPU(), LoadAvgStart: in.loadStart, LoadAvgEnd: loadAvg()}
	r.memMu.Unlock()
	r.timelineMu.Lock()
	rep.Timeline = append([]report.Tick(nil), r.timeline...)
	r.timelineMu.Unlock()

	// The socket histories of the conversations with problems.
	for _, p := range rep.Check.Problems {
		c := r.lookupConv(p.SessionID)
		if c == nil {
			continue
		}
		if rep.Traces == nil {
			rep.Traces = map[string][]string{}
		}
		if len(rep.Traces) >= 20 {
			break
		}
		c.mu.Lock()
		for s := range c.sides {
			if t := c.sides[s].trace; len(t) > 0 {
				rep.Traces[c.sid+" "+s2side(s).String()] = append([]string(nil), t...)
			}
		}
		c.mu.Unlock()
	}
}

// targetEvent is a chaos event reduced to what matching needs.
type targetEvent struct {
	process              string
	killed, ready, until time.Time
	readyz               time.Time // when the readiness check answered 200
	err                  error
}

func toEvents(evs []targetChaos) []targetEvent {
	out := make([]targetEvent, 0, len(evs))
	for _, e := range evs {
		te := targetEvent{process: e.Process, killed: e.KilledAt, ready: e.ReadyAt, readyz: e.ReadyAt, err: e.Err}
		te.until = e.ReadyAt.Add(time.Second)
		if e.ReadyAt.IsZero() {
			te.until = e.KilledAt.Add(time.Hour)
		}
		out = append(out, te)
	}
	return out
}

// servedBeforeReady moves the ready time of each restart of a process that holds the
// sockets back to the first reconnect it served, when that came before its readiness
// check answered. Under a reconnect storm the check can wait seconds for its answer
// while the process already serves clients; timing resumes from the answer would
// flatter them. The attribution window (until) stays as the check set it.
func servedBeforeReady(events []targetEvent, eps []*episode) {
	for i := range events {
		e := &events[i]
		if e.ready.IsZero() || !holdsSockets(e.process) {
			continue
		}
		for _, ep := range eps {
			if ep.droppedAt.Before(e.killed) || !ep.droppedAt.Before(e.until) {
				continue
			}
			if ep.connectedAt.After(e.killed) && ep.connectedAt.Before(e.ready) {
				e.ready = ep.connectedAt
			}
		}
	}
}

// afterChaos sums up how fast the clients dropped by each restart were back: how many
// resumed within 2 s of the process being ready, and where their time went.
func afterChaos(events []targetEvent, eps []*episode) report.ChaosResumes {
	var out report.ChaosResumes
	var slowest time.Duration
	var arrival, dial, resume stats.Histogram
	for _, ep := range eps {
		ev := chaosFor(events, ep.droppedAt)
		if ev == nil {
			continue
		}
		out.Clients++
		if ep.resumedAt.IsZero() {
			continue
		}
		late := ep.resumedAt.Sub(ev.ready)
		slowest = max(slowest, late)
		if late <= 2*time.Second {
			out.Within2s++
		}
		arrival.Record(max(0, ep.dialedAt.Sub(ev.ready)))
		dial.Record(ep.connectedAt.Sub(ep.dialedAt))
		resume.Record(ep.resumedAt.Sub(ep.connectedAt))
	}
	if out.Clients > 0 {
		out.Share = float64(out.Within2s) / float64(out.Clients)
		out.SlowestMS = float64(slowest.Microseconds()) / 1000
		out.Arrival, out.Dial, out.Resume = arrival.Summary(), dial.Summary(), resume.Summary()
	}
	return out
}

// holdsSockets reports whether restarting the named process drops the sockets.
func holdsSockets(process string) bool {
	return process == "dev" || process == "gateway" || process == "target"
}

// chaosFor returns the restart a drop at t belongs to: the socket dropped between
// the kill and shortly after the process was ready again.
func chaosFor(events []targetEvent, t time.Time) *targetEvent {
	for i := len(events) - 1; i >= 0; i-- {
		e := &events[i]
		if !t.Before(e.killed) && t.Before(e.until) && !e.ready.IsZero() {
			return e
		}
	}
	return nil
}

// loadAvg is the host's load average (1, 5, 15 minutes) from /proc; "" when unknown.
// Other work on the machine skews every latency: the report shows it.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// cpuPercent is the CPU a process used during the steady phase, in percent of a core
// (0 when a restart made the counters incomparable).
func cpuPercent(in fillInput, name string) float64 {
	window := in.sendEnd.Sub(in.rampEnd)
	used := in.cpuTo[name] - in.cpuFrom[name]
	if window <= 0 || used < 0 {
		return 0
	}
	return math.Round(1000*used.Seconds()/window.Seconds()) / 10
}
