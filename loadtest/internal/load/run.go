package load

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/helmdesk/helmdesk/pkg/client"

	"github.com/helmdesk/helmdesk/loadtest/internal/check"
	"github.com/helmdesk/helmdesk/loadtest/internal/report"
	"github.com/helmdesk/helmdesk/loadtest/internal/target"
)

// runner is one run's state.
type runner struct {
	cfg     Config
	runID   string
	url     string
	api     *client.Client // no token
	admin   *client.Client
	cluster *target.Cluster
	m       *metrics
	q       *queue
	sched   *scheduler
	pad     string

	start       time.Time
	stopSending atomic.Bool // agents stop answering, the scheduler has stopped
	closing     atomic.Bool // sockets are being closed on purpose: do not reconnect

	createSem chan struct{}
	readers   sync.WaitGroup

	agents    []*agent
	agentByID map[string]*agent // read-only once the agents are set up

	convMu    sync.Mutex
	convs     map[string]*conv // by session id, including sessions only an agent saw
	customers []*conv          // sessions the tool created, in creation order

	chaosMu sync.Mutex
	chaos   []target.ChaosEvent

	timelineMu sync.Mutex
	timeline   []report.Tick

	memMu    sync.Mutex
	peakRSS  map[string]int64
	toolPeak int64
	goPeak   int
}

// stopping reports that the run is ending: sockets that drop now are not reconnected.
func (r *runner) stopping(ctx context.Context) bool {
	return r.closing.Load() || ctx.Err() != nil
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Log != nil {
		fmt.Fprintf(r.cfg.Log, "loadtest: "+format+"\n", args...)
	}
}

// trace adds an event to a side of a conversation.
func (r *runner) trace(c *conv, s check.Side, format string, args ...any) {
	c.mu.Lock()
	c.traceLocked(s, time.Since(r.start), format, args...)
	c.mu.Unlock()
}

// convFor returns the conversation of a session, creating it when new.
func (r *runner) convFor(sid string) *conv {
	r.convMu.Lock()
	defer r.convMu.Unlock()
	c := r.convs[sid]
	if c == nil {
		c = newConv(sid)
		r.convs[sid] = c
	}
	return c
}

func (r *runner) lookupConv(sid string) *conv {
	r.convMu.Lock()
	defer r.convMu.Unlock()
	return r.convs[sid]
}

func (r *runner) addCustomer(c *conv) {
	r.convMu.Lock()
	r.customers = append(r.customers, c)
	r.convMu.Unlock()
}

func (r *runner) customerList() []*conv {
	r.convMu.Lock()
	defer r.convMu.Unlock()
	return append([]*conv(nil), r.customers...)
}

// text is a message's text: recognisable, and TextBytes long.
func (r *runner) text(id string) string {
	t := "loadtest " + r.runID + " " + id + " "
	if n := r.cfg.TextBytes - len(t); n > 0 {
		t += r.pad[:min(n, len(r.pad))]
	}
	return t
}

func newRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Run runs one load test and returns its report (with the verdict set). It returns
// an error only when the test could not run at all (bad configuration, a target
// that does not start or cannot be set up). Cancelling ctx stops the run early: it
// still closes every socket, stops every process it started and reports what it
// saw.
func Run(ctx context.Context, cfg Config) (*report.Report, error) {
	if err := cfg.Complete(); err != nil {
		return nil, err
	}
	r := &runner{
		cfg: cfg, runID: newRunID(), m: newMetrics(), q: newQueue(),
		createSem: make(chan struct{}, 64), agentByID: map[string]*agent{}, convs: map[string]*conv{},
		pad: strings.Repeat("x", cfg.TextBytes), peakRSS: map[string]int64{},
	}
	rep := &report.Report{RunID: r.runID, Errors: map[string]int64{}}
	start := time.Now()
	r.start = start
	loadStart := loadAvg()
	rep.StartedAt = start

	if cfg.Layout != "" {
		cl, err := target.Start(ctx, target.Options{Binary: cfg.Binary, Layout: cfg.Layout, Dir: cfg.Dir, Logf: r.logf})
		if err != nil {
			return nil, fmt.Errorf("start target: %w", err)
		}
		defer func() {
			r.logf("stopping the processes it started")
			cl.Stop()
		}()
		r.cluster, r.url = cl, cl.URL
		rep.LogDir = cl.LogDir
	} else {
		r.url = strings.TrimRight(cfg.Target, "/")
	}
	if err := target.CheckLoopback(r.url); err != nil {
		return nil, err
	}
	transport := &http.Transport{
		DialContext:         target.LoopbackDialer().DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     30 * time.Second,
	}
	defer transport.CloseIdleConnections()
	r.api = client.New(r.url)
	r.api.HTTP = &http.Client{
		Transport: &upgradeTransport{base: transport, dialer: target.LoopbackDialer()},
		Timeout:   30 * time.Second,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			return target.CheckLoopback(req.URL.String())
		},
	}

	// Sockets live on ioCtx, which outlives ctx so that an interrupted run can still
	// close them properly.
	ioCtx, ioCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer ioCancel()

	// Memory before any work: the per-connection figure is measured against it.
	baseline := r.sampleMemory()

	// Setup: admin, then the agents.
	if err := r.setupAdmin(ctx); err != nil {
		return nil, err
	}
	capacity := cfg.agentCapacity()
	if err := r.setupAgents(ctx, ioCtx, capacity); err != nil {
		r.closeAll()
		return nil, err
	}
	r.logf("target %s: %d agents online (max_sessions %d); starting %d customers at %.0f/s", r.url, len(r.agents), capacity, cfg.Customers, cfg.RampRate)

	// The shared senders, the scheduler and the observers.
	var workers sync.WaitGroup
	for range cfg.Senders {
		workers.Go(func() { r.sender(ioCtx) })
	}
	r.sched = &scheduler{r: r, add: make(chan *conv, cfg.Customers), interval: time.Duration(float64(time.Second) / cfg.Rate), jitter: cfg.Jitter}
	sendCtx, stopSend := context.WithCancel(ctx)
	defer stopSend()
	schedDone := make(chan string, 1)
	go func() { schedDone <- r.sched.run(sendCtx, cfg.Messages) }()
	obsCtx, stopObs := context.WithCancel(context.WithoutCancel(ctx))
	var observers sync.WaitGroup
	observers.Go(func() { r.progress(obsCtx, start) })
	observers.Go(func() { r.sampler(obsCtx) })
	observers.Go(func() { r.sweeper(obsCtx) })

	// Ramp: customers one after another at RampRate, until RampTimeout.
	rampStart := time.Now()
	rampCtx, rampCancel := context.WithTimeout(sendCtx, cfg.RampTimeout)
	defer rampCancel()
	var turns sync.WaitGroup
	for i := range cfg.Customers {
		if cfg.RampRate > 0 {
			due := rampStart.Add(time.Duration(float64(i) / cfg.RampRate * float64(time.Second)))
			if !sleep(rampCtx, time.Until(due)) {
				break
			}
		}
		if rampCtx.Err() != nil {
			break
		}
		r.readers.Add(1)
		turns.Add(1)
		var once sync.Once
		go r.customer(ioCtx, rampCtx, i, func() { once.Do(turns.Done) })
	}
	waitCtx(rampCtx, &turns)
	if rampCtx.Err() != nil && sendCtx.Err() == nil {
		r.logf("ramp timed out after %s: %d of %d sessions created; the rest are abandoned", cfg.RampTimeout, r.m.sessionsCreated.Load(), cfg.Customers)
	}
	rampEnd := time.Now()
	r.logf("ramp done in %.1fs: %d sessions, %d connected", rampEnd.Sub(rampStart).Seconds(), r.m.sessionsCreated.Load(), r.m.customersLive.Load())
	if cfg.Warmup > 0 {
		// Customers keep sending; the steady-state figures start once the target has
		// worked off what the ramp piled up.
		r.logf("warming up for %s before measuring the steady state", cfg.Warmup)
		select {
		case <-sendCtx.Done():
		case <-time.After(cfg.Warmup):
		}
		rampEnd = time.Now()
	}
	r.m.steadyFrom.Store(rampEnd.UnixNano())
	atRampEnd := r.m.snap()
	cpuAtRampEnd := r.sampleCPU()

	// Chaos runs during the steady phase.
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		r.runChaos(sendCtx)
	}()

	// Steady: until the duration is over, the budget spent or the run interrupted.
	stopped := "duration"
	steady := time.NewTimer(cfg.Duration)
	select {
	case <-steady.C:
	case why := <-schedDone:
		stopped = why
		schedDone <- why
	case <-ctx.Done():
		stopped = "interrupted"
	}
	steady.Stop()
	r.stopSending.Store(true)
	stopSend()
	<-schedDone
	sendEnd := time.Now()
	r.m.steadyTo.Store(sendEnd.UnixNano())
	atSendEnd := r.m.snap()
	steadyMem := r.sampleMemory()
	cpuAtSendEnd := r.sampleCPU()
	steadyConns := int(r.m.customersLive.Load() + r.m.agentsLive.Load())
	r.logf("sending stopped (%s); waiting for chaos to finish and deliveries to drain (up to %s)", stopped, cfg.DrainTimeout)
	<-chaosDone

	// Drain: wait until everything acknowledged has been delivered.
	drainStart := time.Now()
	drained := false
	if ctx.Err() == nil {
		drained = r.drain(ctx, cfg.DrainTimeout)
	}
	drainEnd := time.Now()

	// Close every socket, stop the senders and the observers.
	r.closeAll()
	waitTimeout(&r.readers, 15*time.Second)
	r.q.close()
	waitTimeout(&workers, 10*time.Second)
	ioCancel()
	stopObs()
	observers.Wait()

	// Cross-check with the REST history, then judge.
	hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.HistoryTimeout)
	if ctx.Err() != nil {
		hcancel()
		hctx, hcancel = context.WithTimeout(context.Background(), 0)
	}
	history := r.fetchHistories(hctx)
	hcancel()
	checkEnd := time.Now()
	rep.Check = r.check(history)

	r.fill(rep, fillInput{
		start: start, rampStart: rampStart, rampEnd: rampEnd, sendEnd: sendEnd, drainStart: drainStart, drainEnd: drainEnd, checkEnd: checkEnd,
		atRampEnd: atRampEnd, atSendEnd: atSendEnd, drained: drained, stopped: stopped,
		baseline: baseline, steadyMem: steadyMem, steadyConns: steadyConns, capacity: capacity, loadStart: loadStart,
		cpuFrom: cpuAtRampEnd, cpuTo: cpuAtSendEnd,
	})
	rep.Evaluate(cfg.MaxErrorRate)
	return rep, nil
}

func waitCtx(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// setupAdmin performs first-run setup when needed, else signs in.
func (r *runner) setupAdmin(ctx context.Context) error {
	cfg := r.cfg
	doSetup := cfg.Setup == "always"
	if cfg.Setup == "auto" {
		var state struct {
			SetupDone bool `json:"setup_done"`
		}
		if err := r.retryHTTP(ctx, "setup_state", func(ctx context.Context) error {
			return r.api.Do(ctx, http.MethodGet, "/api/v1/setup", nil, &state)
		}); err != nil {
			return fmt.Errorf("read the target's setup state: %w", err)
		}
		doSetup = !state.SetupDone
	}
	if doSetup {
		res, err := r.api.Setup(ctx, cfg.Organization, cfg.AdminEmail, cfg.AdminPassword, "Loadtest Admin")
		r.m.ops.Add(1)
		if err != nil {
			return fmt.Errorf("first-run setup: %w", err)
		}
		r.admin = r.api.WithToken(res.Token)
		r.logf("first-run setup done: organisation %q, admin %s", cfg.Organization, cfg.AdminEmail)
		return nil
	}
	var token string
	if err := r.retryHTTP(ctx, "admin_login", func(ctx context.Context) (err error) {
		token, err = r.api.Login(ctx, cfg.AdminEmail, cfg.AdminPassword)
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			return backoffStop{err}
		}
		return err
	}); err != nil {
		return fmt.Errorf("sign in as %s (give -admin-email and -admin-password of the target's admin): %w", cfg.AdminEmail, err)
	}
	r.admin = r.api.WithToken(token)
	return nil
}

// backoffStop wraps an error that retrying cannot fix.
type backoffStop struct{ error }

func (b backoffStop) Unwrap() error { return b.error }

// setupAgents creates and connects every agent, a few at a time.
func (r *runner) setupAgents(ctx, ioCtx context.Context, capacity int) error {
	agents := make([]*agent, r.cfg.Agents)
	socks := make([]*client.Socket, r.cfg.Agents)
	errs := make([]error, r.cfg.Agents)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range r.cfg.Agents {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				errs[i] = ctx.Err()
				return
			}
			agents[i], socks[i], errs[i] = r.setupAgent(ctx, i, capacity)
		})
	}
	wg.Wait()
	for i, a := range agents {
		if a == nil {
			continue
		}
		r.agents = append(r.agents, a)
		r.agentByID[a.id] = a
		r.m.agentsLive.Add(1)
		r.readers.Add(1)
		go r.agentLoop(ioCtx, a, socks[i])
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set up agents: %w", err)
	}
	return nil
}

// closeAll closes every socket on purpose (a normal closure): readers return
// instead of reconnecting.
func (r *runner) closeAll() {
	r.closing.Store(true)
	var socks []*client.Socket
	for _, c := range r.customerList() {
		c.mu.Lock()
		if c.sock != nil {
			socks = append(socks, c.sock)
		}
		c.mu.Unlock()
	}
	for _, a := range r.agents {
		a.mu.Lock()
		if a.sock != nil {
			socks = append(socks, a.sock)
		}
		a.mu.Unlock()
	}
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for _, s := range socks {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = s.Close()
		})
	}
	waitTimeout(&wg, 10*time.Second)
}

// drain waits until every conversation is settled: sockets up and resumed, every
// message acknowledged and delivered to the other side, both sides at the same seq.
func (r *runner) drain(ctx context.Context, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if r.settled() {
			return true
		}
		if time.Now().After(deadline) || !sleep(ctx, 100*time.Millisecond) {
			return false
		}
	}
}

func (r *runner) settled() bool {
	for _, a := range r.agents {
		a.mu.Lock()
		ok := a.live && len(a.pending) == 0
		a.mu.Unlock()
		if !ok {
			return false
		}
	}
	for _, c := range r.customerList() {
		c.mu.Lock()
		ok := c.settledLocked()
		c.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

// settledLocked reports whether nothing of the conversation is in flight.
func (c *conv) settledLocked() bool {
	if !c.live || len(c.sides[customer].unacked) > 0 || len(c.sides[agentS].unacked) > 0 {
		return false
	}
	if c.agent == nil {
		return true // nobody to deliver to: acknowledged is all there is
	}
	return c.undelivered == 0 && c.sides[customer].lastSeq == c.sides[agentS].lastSeq
}

// runChaos kills and restarts the chosen processes, ChaosCycles times each, one
// every ChaosInterval, until ctx ends (a restart in progress is completed).
func (r *runner) runChaos(ctx context.Context) {
	if r.cluster == nil || len(r.cfg.Chaos) == 0 {
		return
	}
	for _, name := range r.cfg.Chaos {
		for cycle := 1; cycle <= r.cfg.ChaosCycles; cycle++ {
			if !sleep(ctx, r.cfg.ChaosInterval) {
				return
			}
			r.logf("chaos: SIGKILL %s (%d of %d)", name, cycle, r.cfg.ChaosCycles)
			ev := r.cluster.Chaos(ctx, name, r.cfg.ChaosDown)
			if ev.Err != nil {
				r.logf("chaos: %s: %v", name, ev.Err)
			} else {
				r.logf("chaos: %s ready again %.2fs after the kill", name, ev.Downtime().Seconds())
			}
			r.chaosMu.Lock()
			r.chaos = append(r.chaos, ev)
			r.chaosMu.Unlock()
			if ev.Err != nil {
				return
			}
		}
	}
}

// sweeper resends messages whose ack is overdue on a live socket, and messages
// that were never written (the socket was down when their turn came).
func (r *runner) sweeper(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.closing.Load() {
			return
		}
		now := time.Now()
		for _, c := range r.customerList() {
			var resend [2][]*msg
			c.mu.Lock()
			for s := range c.sides {
				if c.socketFor(s2side(s)) == nil {
					continue
				}
				for _, m := range c.sides[s].unacked {
					overdue := m.attempts > 0 && now.Sub(m.lastSent) > r.cfg.AckTimeout
					unsent := m.attempts == 0 && now.Sub(m.created) > 2*time.Second
					if overdue || unsent {
						resend[s] = append(resend[s], m)
						if overdue {
							m.lastSent = now // one resend per timeout
						}
					}
				}
			}
			c.mu.Unlock()
			for s, ms := range resend {
				for _, m := range ms {
					if m.attempts > 0 {
						r.m.err("frame:ack_timeout")
					}
					r.q.push(job{kind: jobMessage, c: c, from: s2side(s), m: m})
				}
			}
		}
	}
}

// progress records the timeline and writes one line a second.
func (r *runner) progress(ctx context.Context, start time.Time) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var prev snapshot
	var prevErrs int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := r.m
		cur := m.snap()
		errs := m.errorTotal()
		tick := report.Tick{T: math.Round(cur.at.Sub(start).Seconds()*10) / 10, CustomersLive: m.customersLive.Load(), AgentsLive: m.agentsLive.Load(), Errors: errs - prevErrs}
		for s := range 2 {
			tick.Sent[s] = cur.sent[s] - prev.sent[s]
			tick.Delivered[s] = cur.delivered[s] - prev.delivered[s]
			tick.P99MS[s] = m.window[s].Take().Summary().P99
		}
		tick.AckP99MS = m.ackWindow.Take().Summary().P99
		prev, prevErrs = cur, errs
		r.timelineMu.Lock()
		r.timeline = append(r.timeline, tick)
		r.timelineMu.Unlock()
		if r.cfg.Progress == nil {
			continue
		}
		fmt.Fprintf(r.cfg.Progress, "[%5.0fs] customers %d/%d agents %d/%d | sent c→a %d a→c %d | delivered c→a %d a→c %d | p99 c→a %s a→c %s | errors %d | queue %d\n",
			time.Since(start).Seconds(), m.customersLive.Load(), r.cfg.Customers, m.agentsLive.Load(), len(r.agents),
			m.sent[customer].Load(), m.sent[agentS].Load(), m.delivered[customer].Load(), m.delivered[agentS].Load(),
			fmtDur(m.latency[customer].Quantile(0.99)), fmtDur(m.latency[agentS].Quantile(0.99)), m.errorTotal(), r.q.len())
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	default:
		return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
	}
}

// sampler records peak memory every second.
func (r *runner) sampler(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		r.sampleMemory()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sampleMemory reads the target's processes' RSS (and the tool's), keeps peaks,
// and returns the current values by process.
func (r *runner) sampleMemory() map[string]int64 {
	cur := map[string]int64{}
	if r.cluster != nil {
		for _, p := range r.cluster.Processes() {
			cur[p.Name] = p.RSS()
		}
	}
	if r.cfg.TargetPID != 0 {
		cur["target"] = target.RSSOf(r.cfg.TargetPID)
	}
	tool := target.RSSOf(os.Getpid())
	g := runtime.NumGoroutine()
	r.memMu.Lock()
	for k, v := range cur {
		r.peakRSS[k] = max(r.peakRSS[k], v)
	}
	r.toolPeak = max(r.toolPeak, tool)
	r.goPeak = max(r.goPeak, g)
	r.memMu.Unlock()
	return cur
}

// sampleCPU reads the CPU time used so far by the target's processes and by the
// tool ("" key).
func (r *runner) sampleCPU() map[string]time.Duration {
	cur := map[string]time.Duration{"": target.CPUOf(os.Getpid())}
	if r.cluster != nil {
		for _, p := range r.cluster.Processes() {
			cur[p.Name] = p.CPU()
		}
	}
	if r.cfg.TargetPID != 0 {
		cur["target"] = target.CPUOf(r.cfg.TargetPID)
	}
	return cur
}

// WriteReport writes the report's text to w and, when jsonOut is not nil, its JSON.
func WriteReport(rep *report.Report, text, jsonOut io.Writer) error {
	rep.WriteText(text)
	if jsonOut != nil {
		return rep.WriteJSON(jsonOut)
	}
	return nil
}
