package load

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/helmdesk/helmdesk/pkg/client"

	"github.com/helmdesk/helmdesk/loadtest/internal/check"
	"github.com/helmdesk/helmdesk/loadtest/internal/stats"
)

const (
	customer = check.Customer
	agentS   = check.Agent
)

// msg is one message a side wrote (or will write).
type msg struct {
	id        string
	text      string
	created   time.Time
	firstSent time.Time // first write to a socket; latency is measured from it
	lastSent  time.Time
	attempts  int
	acked     bool
	delivered bool // the other side received it
	retries   int  // resends after error frames
}

// side is what one side of a conversation sent and received.
type side struct {
	sent    []*msg
	byID    map[string]*msg
	unacked map[string]*msg
	recv    []check.Received
	lastSeq int64 // highest seq received
	nextID  int
	// trace is what happened to this side's socket (connects, drops, resumes, error
	// frames, the first message of each connection), for explaining problems.
	trace    []string
	lastConn int // connection of the last message received
}

const maxTrace = 60

// traceLocked adds an event to a side's trace; the caller holds c.mu.
func (c *conv) traceLocked(s check.Side, at time.Duration, format string, args ...any) {
	t := &c.sides[s].trace
	if len(*t) >= maxTrace {
		return
	}
	*t = append(*t, fmt.Sprintf("%7.3fs ", at.Seconds())+fmt.Sprintf(format, args...))
}

// conv is one conversation (session). Its mutex guards everything but the fields
// set once before it is shared.
type conv struct {
	idx int
	sid string

	mu      sync.Mutex
	token   string    // customer token ("" until the session is created)
	started time.Time // before the create-session request
	agent   *agent    // the agent the session is assigned to
	replied bool      // the customer got a first agent message
	sock    *client.Socket
	conn    int  // customer socket connections so far
	live    bool // the customer socket is connected and resumed
	sides   [2]side
	// undelivered counts the messages of both sides the other side has not received.
	undelivered int

	// Owned by the scheduler.
	nextAt  time.Time
	heapIdx int
}

func newConv(sid string) *conv {
	c := &conv{sid: sid}
	for i := range c.sides {
		c.sides[i].byID = map[string]*msg{}
		c.sides[i].unacked = map[string]*msg{}
	}
	return c
}

// agent is one simulated agent with its one socket for all its sessions.
type agent struct {
	idx   int
	id    string
	email string
	api   *client.Client // with the agent's token

	mu      sync.Mutex
	sock    *client.Socket
	conn    int // socket connections so far
	live    bool
	convs   map[string]*conv
	pending map[string]bool // sessions whose resume has not completed
	ep      *episode        // the reconnect in progress
}

// episode is one dropped socket, from the drop to the resumed frame. A socket that
// drops again before it resumed stays in the same episode.
type episode struct {
	who         string // customer or agent
	client      string // session id or agent email
	cause       string
	drops       int
	droppedAt   time.Time
	dialedAt    time.Time // the successful reconnect's dial began
	connectedAt time.Time // a reconnect succeeded
	resumedAt   time.Time
}

// metrics are the live counters of a run.
type metrics struct {
	created   [2]atomic.Int64 // messages created by each side
	sent      [2]atomic.Int64 // written at least once
	acked     [2]atomic.Int64
	delivered [2]atomic.Int64 // received by the other side, by sender
	resends   atomic.Int64
	ops       atomic.Int64 // HTTP requests and frames written

	latency    [2]stats.Histogram // by sender side
	steadyLat  [2]stats.Histogram // of messages first sent during the steady phase
	window     [2]stats.Histogram // latency of this second's deliveries (for the timeline)
	ackWindow  stats.Histogram
	steadyFrom atomic.Int64 // unix nanoseconds; 0 until the ramp is done
	steadyTo   atomic.Int64 // unix nanoseconds; 0 until sending stops
	ack        stats.Histogram
	firstReply stats.Histogram
	resume     stats.Histogram
	create     stats.Histogram

	sessionsCreated atomic.Int64
	sessionsFailed  atomic.Int64
	customersLive   atomic.Int64
	agentsLive      atomic.Int64
	reconnects      [2]atomic.Int64
	resumes         atomic.Int64
	historyFetches  atomic.Int64
	foreign         atomic.Int64 // frames about sessions the tool does not know

	mu          sync.Mutex
	errs        map[string]int64
	examples    map[string]string // the first error message of each kind
	episodes    []*episode
	firstCreate time.Time
	lastCreate  time.Time
}

func newMetrics() *metrics { return &metrics{errs: map[string]int64{}, examples: map[string]string{}} }

// recordLatency records a delivery latency, also as a steady-phase one when the
// message was first sent after the ramp and before sending stopped.
func (m *metrics) recordLatency(from check.Side, sentAt time.Time, latency time.Duration) {
	m.latency[from].Record(latency)
	m.window[from].Record(latency)
	t, lo, hi := sentAt.UnixNano(), m.steadyFrom.Load(), m.steadyTo.Load()
	if lo != 0 && t >= lo && (hi == 0 || t <= hi) {
		m.steadyLat[from].Record(latency)
	}
}

func (m *metrics) err(kind string) { m.errf(kind, nil) }

// errf counts an error of a kind and keeps the first message of each kind.
func (m *metrics) errf(kind string, err error) {
	m.mu.Lock()
	m.errs[kind]++
	if _, ok := m.examples[kind]; !ok && err != nil {
		msg := err.Error()
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		m.examples[kind] = msg
	}
	m.mu.Unlock()
}

// connected marks the moment a dropped socket's reconnect succeeded, and when its
// dial began.
func (m *metrics) connected(ep *episode, dialed, at time.Time) {
	if ep == nil {
		return
	}
	m.mu.Lock()
	ep.dialedAt, ep.connectedAt = dialed, at
	m.mu.Unlock()
}

// resumed marks the moment a reconnected socket got its (last) resumed frame.
func (m *metrics) resumed(ep *episode, at time.Time) {
	if ep == nil {
		return
	}
	m.mu.Lock()
	if !ep.resumedAt.IsZero() {
		m.mu.Unlock()
		return
	}
	ep.resumedAt = at
	took := at.Sub(ep.connectedAt)
	m.mu.Unlock()
	m.resume.Record(took)
}

func (m *metrics) errorTotal() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, v := range m.errs {
		n += v
	}
	return n
}

// dropped records a drop: a new episode, or one more drop of ep when it has not
// resumed yet.
func (m *metrics) dropped(ep *episode, who, client, cause string, at time.Time) *episode {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ep != nil && ep.resumedAt.IsZero() {
		ep.drops++
		return ep
	}
	ep = &episode{who: who, client: client, cause: cause, droppedAt: at, drops: 1}
	m.episodes = append(m.episodes, ep)
	return ep
}

func (m *metrics) sessionCreated(at time.Time) {
	m.sessionsCreated.Add(1)
	m.mu.Lock()
	if m.firstCreate.IsZero() {
		m.firstCreate = at
	}
	m.lastCreate = at
	m.mu.Unlock()
}

// snapshot is the counters at one instant, for rates over a window.
type snapshot struct {
	at        time.Time
	sent      [2]int64
	delivered [2]int64
}

func (m *metrics) snap() snapshot {
	s := snapshot{at: time.Now()}
	for i := range 2 {
		s.sent[i] = m.sent[i].Load()
		s.delivered[i] = m.delivered[i].Load()
	}
	return s
}

func s2side(i int) check.Side { return check.Side(i) }
