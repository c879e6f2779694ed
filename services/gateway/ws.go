package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/helmdesk/helmdesk/pkg/events"
	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/frames"
	"github.com/helmdesk/helmdesk/pkg/logkey"
	eventsv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/events/v1"
	routingv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/routing/v1"
	sessionv1 "github.com/helmdesk/helmdesk/proto/gen/helmdesk/session/v1"
	"github.com/helmdesk/helmdesk/services/session"
)

const (
	// readLimit is the largest frame read; bigger ones close the socket (1009). Frames
	// up to it whose text exceeds frames.MaxTextBytes get an error frame instead.
	readLimit = 256 << 10
	// replayPage is how many messages one history read asks for.
	replayPage = 200
	// replayLimit is the most messages a resume replays over the socket; beyond it the
	// client is told to fetch history over REST.
	replayLimit = 1000
	pingEvery   = 30 * time.Second
	// presenceHeartbeat keeps an agent's connection alive in routing (whose TTL is 60 s).
	presenceHeartbeat = 20 * time.Second
	writeWait         = 10 * time.Second
	// resumeGrace is how long, after a socket connects, the live messages of a
	// session wait for the client's resume of that session (see holdLive).
	resumeGrace = 2 * time.Second
	// maxHeld bounds the live messages one socket holds back during resumeGrace.
	maxHeld = 512
)

type itemKind uint8

const (
	itemRaw      itemKind = iota // a complete frame to write as is
	itemFanout                   // a fan-out payload from the hub
	itemResume                   // replay a session after lastSeq
	itemPing                     // ping the client (keeps intermediaries from timing out)
	itemAckSweep                 // ack, without a seq, sends whose frame did not come back
	itemRelease                  // stop holding back live messages: of sid, or of every session when sid is ""
	itemFlush                    // nothing to write: ends a batch, so what is held (the 101) goes out
)

type outItem struct {
	kind    itemKind
	payload []byte
	sid     string
	lastSeq int64
	page    *pageFetch // itemResume: the first page, fetched ahead
	current bool       // itemResume: the client had every message when the socket greeted it
}

// pageFetch is a page of history being fetched ahead of the writer. An agent
// reconnecting resumes each of its sessions; fetching their first pages while the
// writer works through them turns dozens of sequential round trips into a few.
type pageFetch struct {
	after int64
	done  chan struct{}
	res   *sessionv1.ListMessagesResponse
	err   error
}

// prefetchers bounds the pages one socket fetches ahead at once.
const prefetchers = 8

// socket is one customer or agent WebSocket.
//
// An idle socket costs little: its reader goroutine waits in a read; a writer
// goroutine exists only while frames are queued; pings, ack deadlines and presence
// heartbeats are timers, not goroutines; and the send queue is allocated only while
// it holds something.
type socket struct {
	g      *Gateway
	conn   *websocket.Conn
	out    *batchWriter // the connection under conn, which the writer batches writes on
	p      Principal
	agent  bool
	ctx    context.Context
	cancel context.CancelCauseFunc

	qmu     sync.Mutex
	queue   []outItem     // frames waiting for the writer; nil when empty
	qlimit  int           // most frames queued before the socket counts as too slow
	writing bool          // a writer goroutine is running
	opening bool          // the socket is being greeted: no writer starts yet (see greet)
	stopped bool          // the socket has ended: nothing is queued or written any more
	space   chan struct{} // closed when the queue has room again (a reader waits on it)
	writers sync.WaitGroup
	pinger  *time.Timer // the next ping

	mu      sync.Mutex
	allowed map[string]bool        // agent: sessions this agent may use
	agentID string                 // customer: the session's agent, for typing and read frames
	closed  bool                   // customer: the session is closed
	pending map[string]*pendingAck // acks waiting for their seq, by session + "\x00" + client_msg_id
	typedAt time.Time              // last typing frame published, for throttling
	ackTick *time.Timer            // sweeps pending while it is not empty
	ackDue  bool                   // ackTick is armed or its sweep is queued
	beat    *time.Timer            // agent: the next presence heartbeat

	// Owned by the writer goroutine.
	lastSent map[string]int64 // per session: highest seq written; absent = not yet known
	// runFrom is, per session, where the run of seqs this socket wrote without a hole
	// starts (its writes are contiguous from there up to lastSent): a resume that
	// claims less than runFrom-1 is missing the seqs before it.
	runFrom map[string]int64
	parked  map[string]bool // per session: gap too large, waiting for a resume
	// Until holdUntil (set once, at connect), live messages of a session the socket
	// has written nothing of wait in held for the client's resume of that session (or
	// its first send there), so that the resume's replay comes before them. live lists
	// the sessions released; holdOver ends all holding early.
	holdUntil time.Time
	held      map[string][]outItem
	nHeld     int
	live      map[string]bool
	holdOver  bool
	releaser  *time.Timer // releases everything at holdUntil; set when something is held

	prefetch chan struct{} // slots for pages fetched ahead (reader goroutine), made on first use
	// greeted is, per session, its last seq as read for the greeting, after the
	// socket subscribed to its fan-out (reader goroutine). A resume claiming exactly
	// that seq needs no history read: every later message is published after the
	// subscription and reaches the socket live. Sessions whose last seq the greeting
	// could not read are left out.
	greeted map[string]int64
	// resumes are those the upgrade request carried (see parseResumes), until greet
	// serves them; what greet leaves (an agent's sessions the greeting did not name)
	// the reader serves as resume frames.
	resumes []resumeAt
	// setupDone gives back the gateway's setup slot (see openSocket); safe to call
	// more than once.
	setupDone func()
}

// resumeAt is a resume carried in the upgrade request.
type resumeAt struct {
	sid     string // "" on a customer socket: its one session
	lastSeq int64
}

// maxConnectResumes bounds the resumes one upgrade request may carry; an agent
// following more sessions sends resume frames for the rest.
const maxConnectResumes = 500

// parseResumes reads the resumes an upgrade request carries: last_seq=<seq> on a
// customer socket, resume=<session_id>:<seq> (once per session) on an agent socket.
// Each does what a resume frame sent first thing would, without the round trip: the
// gateway serves them right after the greeting, so that a client up to date gets its
// session frames and its resumed frames in the same write as the 101.
func parseResumes(q url.Values, agent bool) ([]resumeAt, error) {
	if !agent {
		if _, ok := q["resume"]; ok {
			return nil, fault.Invalid("resume", "invalid_resume", "a customer socket has one session: resume it with last_seq=<seq>")
		}
		vals, ok := q["last_seq"]
		if !ok {
			return nil, nil
		}
		if len(vals) != 1 {
			return nil, fault.Invalid("last_seq", "invalid_last_seq", "give last_seq once")
		}
		n, err := parseLastSeq(vals[0])
		if err != nil {
			return nil, err
		}
		return []resumeAt{{lastSeq: n}}, nil
	}
	if _, ok := q["last_seq"]; ok {
		return nil, fault.Invalid("last_seq", "invalid_last_seq", "an agent socket resumes each session with resume=<session_id>:<seq>")
	}
	vals := q["resume"]
	if len(vals) > maxConnectResumes {
		return nil, fault.Invalid("resume", "invalid_resume", "at most %d resumes fit in the request; send resume frames for the other sessions", maxConnectResumes)
	}
	out := make([]resumeAt, 0, len(vals))
	seen := make(map[string]bool, len(vals))
	for _, v := range vals {
		i := strings.LastIndexByte(v, ':')
		if i <= 0 || i > 64 {
			return nil, fault.Invalid("resume", "invalid_resume", "resume takes <session_id>:<seq>, got %q", truncate(v, 80))
		}
		sid := v[:i]
		n, err := parseLastSeq(v[i+1:])
		if err != nil {
			return nil, err
		}
		if seen[sid] {
			return nil, fault.Invalid("resume", "invalid_resume", "session %s is resumed twice", sid)
		}
		seen[sid] = true
		out = append(out, resumeAt{sid: sid, lastSeq: n})
	}
	return out, nil
}

func parseLastSeq(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fault.Invalid("last_seq", "invalid_last_seq", "last_seq is the highest seq the client has: a whole number, 0 for none; got %q", truncate(v, 32))
	}
	return n, nil
}

var errSlowConsumer = errors.New("socket send queue full")

func (s *socket) setRunFrom(sid string, seq int64) {
	if s.runFrom == nil {
		s.runFrom = map[string]int64{}
	}
	s.runFrom[sid] = seq
}

// deliver is called by the hub; it never blocks. A socket too slow to keep up is
// closed with a resume hint: its client reconnects and resumes from its last seq.
func (s *socket) deliver(_ string, payload []byte) {
	s.qmu.Lock()
	full := len(s.queue) >= s.qlimit
	if !full {
		s.pushLocked(outItem{kind: itemFanout, payload: payload})
	}
	s.qmu.Unlock()
	if full {
		s.cancel(errSlowConsumer)
	}
}

// enqueue queues a frame from the reader goroutine. While the queue is full it waits:
// a client that sends faster than it reads the answers is slowed down, not buffered.
func (s *socket) enqueue(it outItem) {
	for {
		s.qmu.Lock()
		if len(s.queue) < s.qlimit || s.stopped {
			s.pushLocked(it)
			s.qmu.Unlock()
			return
		}
		if s.space == nil {
			s.space = make(chan struct{})
		}
		wait := s.space
		s.qmu.Unlock()
		select {
		case <-wait:
		case <-s.ctx.Done():
			return
		}
	}
}

// push queues a frame of the socket's own (a ping, an ack sweep) regardless of the
// limit; timers call it.
func (s *socket) push(it outItem) {
	s.qmu.Lock()
	s.pushLocked(it)
	s.qmu.Unlock()
}

// pushLocked appends it and starts a writer unless one runs or the socket is still
// being greeted. s.qmu is held.
func (s *socket) pushLocked(it outItem) {
	if s.stopped {
		return
	}
	s.queue = append(s.queue, it)
	s.startWriterLocked()
}

// startWriterLocked starts a writer for what is queued, unless one runs or the socket
// is still being greeted. s.qmu is held.
func (s *socket) startWriterLocked() {
	if !s.writing && !s.opening && len(s.queue) > 0 {
		s.writing = true
		s.writers.Add(1)
		go s.drain()
	}
}

// drain is the writer: the only goroutine writing to the connection, and the owner of
// lastSent and parked. It ends when the queue is empty; the next frame starts another.
// What it writes of the frames it finds queued one after another goes out in one
// write (see batchWriter), when the queue is found empty.
func (s *socket) drain() {
	defer s.writers.Done()
	holding := false
	for {
		s.qmu.Lock()
		if s.ctx.Err() != nil {
			s.stopped = true
		}
		if len(s.queue) == 0 || s.stopped {
			if holding {
				// Frames queued during the flush make the next batch.
				s.qmu.Unlock()
				holding = false
				if err := s.out.Flush(writeWait); err != nil {
					s.cancel(err)
				}
				continue
			}
			s.queue = nil // an idle socket keeps no queue
			s.writing = false
			s.qmu.Unlock()
			return
		}
		it := s.queue[0]
		s.queue[0] = outItem{}
		s.queue = s.queue[1:]
		if s.space != nil {
			close(s.space)
			s.space = nil
		}
		s.qmu.Unlock()
		switch {
		case it.kind == itemPing:
			// A ping waits for its pong: what is held goes out first, then the ping.
			if holding {
				holding = false
				if err := s.out.Flush(writeWait); err != nil {
					s.cancel(err)
					continue
				}
			}
		case !holding:
			s.out.Hold()
			holding = true
		}
		if err := s.write(it); err != nil {
			s.cancel(err)
		}
	}
}

// stop ends the writer and the timers; the socket writes nothing afterwards.
func (s *socket) stop() {
	s.qmu.Lock()
	s.stopped = true
	s.queue = nil
	if s.pinger != nil {
		s.pinger.Stop()
	}
	s.qmu.Unlock()
	s.writers.Wait()
	if s.releaser != nil {
		s.releaser.Stop() // the writers are gone: nobody else touches it now
	}
	s.mu.Lock()
	if s.ackTick != nil {
		s.ackTick.Stop()
	}
	if s.beat != nil {
		s.beat.Stop()
	}
	s.mu.Unlock()
}

// armAckSweepLocked makes sure pending is swept in a second. s.mu is held.
func (s *socket) armAckSweepLocked() {
	if s.ackDue {
		return
	}
	s.ackDue = true
	if s.ackTick == nil {
		s.ackTick = time.AfterFunc(time.Second, func() { s.push(outItem{kind: itemAckSweep}) })
	} else {
		s.ackTick.Reset(time.Second)
	}
}

func (s *socket) sendFrame(v any) {
	for _, it := range rawItems(v) {
		s.enqueue(it)
	}
}

func (s *socket) sendError(code, msg, clientMsgID, sid string) {
	s.sendFrame(s.errorFrame(code, msg, clientMsgID, sid))
}

// errorFrame counts an error frame and returns it.
func (s *socket) errorFrame(code, msg, clientMsgID, sid string) frames.Error {
	s.g.metrics.wsErrors.WithLabelValues(code).Inc()
	return frames.Error{Type: frames.TypeError, Code: code, Message: msg, ClientMsgID: clientMsgID, SessionID: sid}
}

// rawItems is v as a frame to queue; none if it cannot be encoded.
func rawItems(v any) []outItem {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return []outItem{{kind: itemRaw, payload: b}}
}

func (s *socket) kind() string {
	if s.agent {
		return "agent"
	}
	return "customer"
}

// serveSocket upgrades the connection and hands the socket to a goroutine of its own.
// The request's handler returns at once, so the socket keeps neither the handler's
// deep stack nor the request (its span ends with the upgrade; the socket's logs keep
// its trace id).
// release gives back the setup slot once the socket has greeted its client.
func (g *Gateway) serveSocket(w http.ResponseWriter, r *http.Request, p Principal, agent bool, resumes []resumeAt, release func()) {
	lean := &leanHijacker{ResponseWriter: w, holdUpgrade: true} // run flushes it
	conn, err := websocket.Accept(lean, r, &websocket.AcceptOptions{
		// Sockets authenticate with a bearer token, never a cookie, so a foreign
		// origin cannot ride on a user's session: embedding sites are allowed.
		InsecureSkipVerify: true,
	})
	if err != nil {
		release()
		return // Accept has written the HTTP error
	}
	conn.SetReadLimit(readLimit)
	base := trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(r.Context()))
	ctx, cancel := context.WithCancelCause(base)
	// A customer's queue holds a burst of its session's messages with their acks
	// (a batch of the session consumer reaches the hub at once) while the writer
	// waits for a CPU; it is allocated only while frames wait.
	qlimit := 256
	if agent {
		qlimit = 512
	}
	s := &socket{g: g, conn: conn, out: lean.out, p: p, agent: agent, qlimit: qlimit, ctx: ctx, cancel: cancel, opening: true,
		allowed: map[string]bool{}, lastSent: map[string]int64{}, parked: map[string]bool{}, pending: map[string]*pendingAck{},
		holdUntil: time.Now().Add(resumeGrace), resumes: resumes, setupDone: release}
	go s.run()
}

// run serves the socket until either side ends it.
func (s *socket) run() {
	g, p, ctx := s.g, s.p, s.ctx
	defer s.setupDone()
	defer s.cancel(nil)
	if !g.track(s) {
		s.flushAndClose(websocket.StatusServiceRestart, `{"reconnect":true,"reason":"server is shutting down"}`)
		return
	}
	defer g.untrack(s)
	conns := g.metrics.wsConnections.WithLabelValues(s.kind())
	conns.Inc()
	defer conns.Dec()

	var channel string
	if s.agent {
		channel = frames.AgentChannel(p.UserID)
	} else {
		channel = frames.SessionChannel(p.SessionID)
	}
	start := time.Now()
	if err := g.hub.subscribe(ctx, channel, s); err != nil {
		g.log.WarnContext(ctx, "subscribe socket", slog.Any(logkey.Error, err))
		s.flushAndClose(websocket.StatusTryAgainLater, `{"reconnect":true,"reason":"fan-out unavailable"}`)
		return
	}
	defer g.hub.unsubscribe(channel, s)
	g.metrics.setupSteps.subscribe.Observe(time.Since(start).Seconds())
	s.qmu.Lock()
	s.pinger = time.AfterFunc(pingEvery, func() { s.push(outItem{kind: itemPing}) })
	s.qmu.Unlock()
	// Runs after stop (deferred below): the writer and the timers are gone by then.
	if s.agent {
		start = time.Now()
		defer s.startPresence()()
		g.metrics.setupSteps.presence.Observe(time.Since(start).Seconds())
	}
	defer s.stop()

	// Ending the socket from the server side (shutdown, revocation, a slow client)
	// cancels ctx; closing the connection with a close frame then ends the read loop.
	// Reads use their own context: a cancelled read would drop the connection
	// without a close frame.
	closed := s.closeWhenEnded()
	defer func() { <-closed }()
	start = time.Now()
	s.greet()
	g.metrics.setupSteps.greet.Observe(time.Since(start).Seconds())
	s.setupDone()
	for _, r := range s.resumes {
		s.handleResume(frames.Client{Type: frames.TypeResume, SessionID: r.sid, LastSeq: &r.lastSeq})
	}
	s.resumes = nil
	s.readLoop(context.WithoutCancel(ctx))
	s.cancel(nil)
}

// flushAndClose closes the connection with a close frame, after what the writer holds
// (the 101, if the socket has not greeted its client yet).
func (s *socket) flushAndClose(code websocket.StatusCode, reason string) {
	_ = s.out.Flush(writeWait)
	_ = s.conn.Close(code, reason)
}

// closeWhenEnded closes the connection once the socket's context ends, with the close
// frame that says why; the returned channel is closed when that is done.
func (s *socket) closeWhenEnded() <-chan struct{} {
	closed := make(chan struct{})
	context.AfterFunc(s.ctx, func() {
		defer close(closed)
		cause := context.Cause(s.ctx)
		if errors.Is(cause, errSlowConsumer) {
			// The writer is stuck on a client that does not read, and a close frame
			// would wait behind it: drop the connection. The client resumes.
			_ = s.conn.CloseNow()
			return
		}
		// A writer still at work flushes what follows.
		s.flushAndClose(closeFrame(cause))
	})
	return closed
}

// startPresence records the agent's console as connected and keeps it so with a
// heartbeat while the socket is open; routing marks the agent away after a grace
// period once their last socket is gone. It returns the disconnect.
func (s *socket) startPresence() (disconnect func()) {
	g, ctx := s.g, s.ctx
	connID := g.rt.Instance + "/" + strconv.FormatUint(g.connSeq.Add(1), 36)
	beat := func() {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := g.routing.AgentConnected(bctx, &routingv1.AgentConnectedRequest{AgentId: s.p.UserID, ConnectionId: connID}); err != nil && ctx.Err() == nil {
			g.log.WarnContext(ctx, "record agent connection", slog.Any(logkey.Error, err))
		}
	}
	beat()
	s.mu.Lock()
	s.beat = time.AfterFunc(presenceHeartbeat, func() {
		beat()
		s.mu.Lock()
		if ctx.Err() == nil {
			s.beat.Reset(presenceHeartbeat)
		}
		s.mu.Unlock()
	})
	s.mu.Unlock()
	return func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := g.routing.AgentDisconnected(dctx, &routingv1.AgentDisconnectedRequest{AgentId: s.p.UserID, ConnectionId: connID}); err != nil {
			g.log.WarnContext(dctx, "record agent disconnection", slog.Any(logkey.Error, err))
		}
	}
}

// closeFrame is the close code and reason a socket ends with.
func closeFrame(cause error) (websocket.StatusCode, string) {
	switch {
	case errors.Is(cause, errShuttingDown):
		return websocket.StatusServiceRestart, `{"reconnect":true,"reason":"server is restarting, resume"}`
	case errors.Is(cause, errRevoked):
		return websocket.StatusPolicyViolation, `{"reconnect":false,"reason":"signed out: credentials revoked or changed"}`
	default:
		return websocket.StatusNormalClosure, ""
	}
}

// greet tells a new socket where its sessions stand, then starts its writer.
//
// The socket is subscribed to its fan-out before the greeting reads its sessions, so
// that nothing published after the read is missed; but what the fan-out delivers in
// the meantime cannot be judged yet: an agent's socket writes only messages of the
// sessions the greeting finds assigned to the agent. So no writer starts while the
// socket is being greeted. The greeting goes first, then whatever was delivered
// meanwhile, and the 101 response, held back in out, goes out in the same write.
// The resumes the upgrade request carried come right after the greeting, before what
// the fan-out delivered: a client that was up to date gets its resumed frames in that
// write too.
func (s *socket) greet() {
	items := s.greeting()
	resumes, fetches := s.connectResumes()
	items = append(items, resumes...)
	s.qmu.Lock()
	if !s.stopped {
		// At most 500 greeting frames and as many resumes: the queue's limit does not
		// apply. The flush item ends the batch even if there is nothing else to write.
		s.queue = append(append(items, s.queue...), outItem{kind: itemFlush})
	}
	s.opening = false
	s.startWriterLocked()
	s.qmu.Unlock()
	for _, fetch := range fetches {
		fetch()
	}
}

// greeting reads where the socket's sessions stand and returns the frames that say so.
func (s *socket) greeting() []outItem {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	if !s.agent {
		got, err := s.g.greetings.Do(ctx, []string{s.p.SessionID})
		if err != nil {
			return rawItems(s.errorFrame("unavailable", "could not load the session; it is still open, resume later", "", s.p.SessionID))
		}
		sess, ok := got[0]
		if !ok {
			s.resumes = nil // nothing to resume
			return rawItems(s.errorFrame("session_not_found", "this session no longer exists; start a new one", "", s.p.SessionID))
		}
		s.mu.Lock()
		s.agentID = sess.GetAgentId()
		s.closed = sess.GetStatus() == sessionv1.Status_STATUS_CLOSED
		s.mu.Unlock()
		s.noteGreeted(sess)
		return rawItems(sessionFrame(sess))
	}
	res, err := s.g.sessions.ListSessions(ctx, &sessionv1.ListSessionsRequest{AgentId: s.p.UserID, Status: sessionv1.Status_STATUS_ASSIGNED, Limit: 500, Summary: true})
	if err != nil {
		return rawItems(s.errorFrame("unavailable", "could not list your sessions; resume later", "", ""))
	}
	items := make([]outItem, 0, len(res.GetSessions()))
	for _, sess := range res.GetSessions() {
		s.mu.Lock()
		s.allowed[sess.GetId()] = true
		s.mu.Unlock()
		s.noteGreeted(sess)
		items = append(items, rawItems(sessionFrame(sess))...)
	}
	return items
}

// connectResumes returns the queue items of the resumes the upgrade request carried,
// for the customer's session or the agent's sessions the greeting named, and the
// funcs that start their history fetches (to call once the items are queued). An
// agent's other sessions need a read to be authorised; they stay in s.resumes for the
// reader to serve after the greeting.
func (s *socket) connectResumes() (items []outItem, fetches []func()) {
	rest := s.resumes[:0]
	for _, r := range s.resumes {
		sid := s.p.SessionID
		if s.agent {
			s.mu.Lock()
			ok := s.allowed[r.sid]
			s.mu.Unlock()
			if !ok {
				rest = append(rest, r)
				continue
			}
			sid = r.sid
		}
		it, fetch := s.resumeItem(sid, r.lastSeq)
		items = append(items, it)
		if fetch != nil {
			fetches = append(fetches, fetch)
		}
	}
	s.resumes = rest
	return items, fetches
}

// readSummaries reads the sessions of the customer sockets being greeted at once in
// one call (see Gateway.greetings): after a restart thousands of sockets open within
// a second, and one call per socket would cost both services more than the reads.
// Sessions that do not exist get no result.
func (g *Gateway) readSummaries(ctx context.Context, ids []string) (map[int]*sessionv1.Session, error) {
	// The group runs this without its callers' deadlines; a read that hung would hold
	// up every greeting after it.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := g.sessions.GetSessionSummaries(ctx, &sessionv1.GetSessionSummariesRequest{SessionIds: ids})
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*sessionv1.Session, len(res.GetSessions()))
	for _, sess := range res.GetSessions() {
		byID[sess.GetId()] = sess
	}
	out := make(map[int]*sessionv1.Session, len(ids))
	for i, id := range ids {
		if sess, ok := byID[id]; ok {
			out[i] = sess
		}
	}
	return out, nil
}

// noteGreeted keeps the session's last seq as the greeting read it (see greeted).
func (s *socket) noteGreeted(sess *sessionv1.Session) {
	if !sess.GetLastSeqKnown() {
		return
	}
	if s.greeted == nil {
		s.greeted = map[string]int64{}
	}
	s.greeted[sess.GetId()] = sess.GetLastSeq()
}

func sessionFrame(sess *sessionv1.Session) frames.Session {
	return frames.Session{Type: frames.TypeSession, SessionID: sess.GetId(), Status: session.StatusName(sess.GetStatus()), AgentID: sess.GetAgentId(),
		Group: sess.GetGroup(), QueuePosition: sess.GetQueuePosition(), CSATRequested: sess.GetStatus() == sessionv1.Status_STATUS_CLOSED && sess.GetCsat() == nil}
}

func (s *socket) readLoop(ctx context.Context) {
	for {
		typ, data, err := s.conn.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			s.sendError("binary_not_supported", "send frames as JSON text", "", "")
			continue
		}
		var f frames.Client
		if err := json.Unmarshal(data, &f); err != nil {
			s.sendError("invalid_json", "the frame is not a valid JSON object", "", "")
			continue
		}
		switch f.Type {
		case frames.TypeMessage:
			s.handleSend(f)
		case frames.TypeResume:
			s.handleResume(f)
		case frames.TypeTyping, frames.TypeRead:
			s.handleSignal(f)
		case "":
			s.sendError("missing_type", `the frame has no "type"`, f.ClientMsgID, f.SessionID)
		default:
			s.sendError("unknown_type", "unknown frame type "+truncate(f.Type, 32)+`; use "message", "resume", "typing" or "read"`, f.ClientMsgID, f.SessionID)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// target resolves and authorises the session a frame is about.
func (s *socket) target(f frames.Client) (string, error) {
	if !s.agent {
		if f.SessionID != "" && f.SessionID != s.p.SessionID {
			return "", fault.New(fault.PermissionDenied, "forbidden_session", "this socket belongs to another session")
		}
		return s.p.SessionID, nil
	}
	if f.SessionID == "" {
		return "", fault.Invalid("session_id", "session_required", "agents must say which session a frame is for (session_id)")
	}
	if len(f.SessionID) > 64 {
		return "", fault.New(fault.PermissionDenied, "forbidden_session", "you are not assigned to this session")
	}
	s.mu.Lock()
	ok := s.allowed[f.SessionID]
	s.mu.Unlock()
	if ok {
		return f.SessionID, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	res, err := s.g.sessions.GetSession(ctx, &sessionv1.GetSessionRequest{SessionId: f.SessionID})
	if err != nil {
		if fault.Is(err, fault.NotFound) || fault.Is(err, fault.InvalidArgument) {
			return "", fault.New(fault.PermissionDenied, "forbidden_session", "you are not assigned to this session")
		}
		return "", err
	}
	if res.GetSession().GetAgentId() != s.p.UserID {
		return "", fault.New(fault.PermissionDenied, "forbidden_session", "you are not assigned to this session")
	}
	if res.GetSession().GetStatus() == sessionv1.Status_STATUS_CLOSED {
		return "", errSessionClosed
	}
	s.mu.Lock()
	s.allowed[f.SessionID] = true
	s.mu.Unlock()
	return f.SessionID, nil
}

func validClientMsgID(id string) bool {
	if id == "" || len(id) > frames.MaxClientMsgIDBytes || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func (s *socket) handleSend(f frames.Client) {
	if !validClientMsgID(f.ClientMsgID) {
		s.sendError("invalid_client_msg_id", "client_msg_id is required: 1-128 printable characters, unique per message", "", f.SessionID)
		return
	}
	sid, err := s.target(f)
	if err == nil && !s.agent {
		s.mu.Lock()
		if s.closed {
			err = errSessionClosed
		}
		s.mu.Unlock()
	}
	if err != nil {
		fe := fault.As(err)
		s.sendError(fe.Code, fe.Message, f.ClientMsgID, f.SessionID)
		return
	}
	if time.Now().Before(s.holdUntil) {
		// A client that sends in a session follows it live: stop holding its
		// messages back for a resume (before this send's own frame comes back).
		s.enqueue(outItem{kind: itemRelease, sid: sid})
	}
	switch {
	case strings.TrimSpace(f.Text) == "":
		s.sendError("empty_text", "the message text is empty", f.ClientMsgID, sid)
		return
	case len(f.Text) > frames.MaxTextBytes:
		s.sendError("text_too_large", "the message text is larger than 16 KiB; split it", f.ClientMsgID, sid)
		return
	case !utf8.ValidString(f.Text):
		s.sendError("invalid_text", "the message text is not valid UTF-8", f.ClientMsgID, sid)
		return
	}
	sender := &eventsv1.Sender{Type: frames.SenderCustomer, Id: s.p.SessionID}
	if s.agent {
		sender = &eventsv1.Sender{Type: frames.SenderAgent, Id: s.p.UserID}
	}
	// The ack goes out when the message comes back sequenced (with its seq), or after
	// ackWait without one: it is durable either way. Register before publishing: the
	// sequenced message can come back before the publish call returns.
	key := sid + "\x00" + f.ClientMsgID
	s.mu.Lock()
	if p, ok := s.pending[key]; ok {
		p.count++ // a repeat: it gets the same ack and seq
	} else {
		s.pending[key] = &pendingAck{count: 1, at: time.Now()}
	}
	s.armAckSweepLocked()
	s.mu.Unlock()
	now := time.Now()
	env, err := events.NewEnvelope(events.TypeInboundMessage, Source, sid, &eventsv1.InboundMessage{
		SessionId: sid, ClientMsgId: f.ClientMsgID, Sender: sender, Text: f.Text, ReceivedAt: timestamppb.New(now), GatewayId: s.g.rt.Instance,
	})
	if err == nil {
		ctx, cancel := context.WithTimeout(s.ctx, writeWait)
		err = s.g.producer.Publish(ctx, events.Record{Topic: events.TopicInbound, Envelope: env})
		cancel()
		s.g.metrics.acceptDuration.Observe(time.Since(now).Seconds())
	}
	if err != nil {
		s.mu.Lock()
		if p, ok := s.pending[key]; ok {
			if p.count--; p.count == 0 {
				delete(s.pending, key)
			}
		}
		s.mu.Unlock()
		s.g.log.WarnContext(s.ctx, "accept message", slog.String(logkey.SessionID, sid), slog.Any(logkey.Error, err))
		s.sendError("unavailable", "the message was not accepted; send it again with the same client_msg_id", f.ClientMsgID, sid)
		return
	}
	s.g.metrics.messagesIn.WithLabelValues(sender.GetType()).Inc()
}

var errSessionClosed = fault.New(fault.Conflict, "session_closed", "the conversation is closed; start a new one")

// ackWait bounds how long an ack waits for its message's seq.
const ackWait = 3 * time.Second

func (s *socket) ack(sid, clientMsgID string, seq int64) {
	a := frames.Ack{Type: frames.TypeAck, ClientMsgID: clientMsgID, Seq: seq}
	if s.agent {
		a.SessionID = sid
	}
	_ = s.writeJSON(a)
}

// pendingAck counts sends of one client_msg_id waiting for its seq.
type pendingAck struct {
	count int
	at    time.Time
}

// settleAck sends the ack of a message this socket sent, once its frame is seen.
func (s *socket) settleAck(h head) {
	if h.ClientMsgID == "" {
		return
	}
	if s.agent {
		if h.Sender.Type != frames.SenderAgent || h.Sender.ID != s.p.UserID {
			return
		}
	} else if h.Sender.Type != frames.SenderCustomer {
		return
	}
	key := h.SessionID + "\x00" + h.ClientMsgID
	s.mu.Lock()
	p, ok := s.pending[key]
	delete(s.pending, key)
	s.mu.Unlock()
	if ok {
		for range p.count {
			s.ack(h.SessionID, h.ClientMsgID, h.Seq)
		}
	}
}

// expireAcks acks, without a seq, messages whose frame did not come back in time.
// It runs on the writer, every second while any ack is pending.
func (s *socket) expireAcks() {
	s.mu.Lock()
	s.ackDue = false
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return
	}
	cutoff := time.Now().Add(-ackWait)
	due := map[string]int{}
	for k, p := range s.pending {
		if p.at.Before(cutoff) {
			due[k] = p.count
			delete(s.pending, k)
		}
	}
	if len(s.pending) > 0 {
		s.armAckSweepLocked()
	}
	s.mu.Unlock()
	for k, n := range due {
		sid, id, _ := strings.Cut(k, "\x00")
		for range n {
			s.ack(sid, id, 0)
		}
	}
}

// handleSignal relays typing indicators and read receipts; they are not stored.
func (s *socket) handleSignal(f frames.Client) {
	sid, err := s.target(f)
	if err != nil {
		fe := fault.As(err)
		s.sendError(fe.Code, fe.Message, "", f.SessionID)
		return
	}
	sender := frames.Sender{Type: frames.SenderCustomer, ID: s.p.SessionID}
	if s.agent {
		sender = frames.Sender{Type: frames.SenderAgent, ID: s.p.UserID}
	}
	var frame any
	if f.Type == frames.TypeTyping {
		if f.State != "start" && f.State != "stop" {
			s.sendError("invalid_state", `typing state must be "start" or "stop"`, "", sid)
			return
		}
		s.mu.Lock()
		throttled := f.State == "start" && time.Since(s.typedAt) < 500*time.Millisecond
		if !throttled {
			s.typedAt = time.Now()
		}
		s.mu.Unlock()
		if throttled {
			return
		}
		frame = frames.Typing{Type: frames.TypeTyping, SessionID: sid, Sender: sender, State: f.State}
	} else {
		if f.Seq < 1 {
			s.sendError("invalid_seq", "read needs seq: the highest seq the reader has seen", "", sid)
			return
		}
		frame = frames.Read{Type: frames.TypeRead, SessionID: sid, Sender: sender, Seq: f.Seq}
	}
	payload, err := frames.Encode(time.Time{}, frame)
	if err != nil {
		return
	}
	channels := []string{frames.SessionChannel(sid)}
	if !s.agent {
		s.mu.Lock()
		if s.agentID != "" {
			channels = append(channels, frames.AgentChannel(s.agentID))
		}
		s.mu.Unlock()
	}
	pipe := s.g.hub.rdb.Pipeline()
	for _, ch := range channels {
		pipe.Publish(s.ctx, ch, payload)
	}
	if _, err := pipe.Exec(s.ctx); err != nil {
		s.sendError("unavailable", "the signal was not delivered", "", sid)
	}
}

func (s *socket) handleResume(f frames.Client) {
	if f.LastSeq == nil || *f.LastSeq < 0 {
		s.sendError("invalid_last_seq", "resume needs last_seq: the highest seq the client has (0 for none)", "", f.SessionID)
		return
	}
	sid, err := s.target(f)
	if err != nil {
		fe := fault.As(err)
		s.sendError(fe.Code, fe.Message, "", f.SessionID)
		return
	}
	it, fetch := s.resumeItem(sid, *f.LastSeq)
	s.enqueue(it)
	if fetch != nil {
		fetch()
	}
}

// resumeItem is the queue item that serves a resume of sid from lastSeq, and, when
// the resume needs history, the func that starts fetching its first page ahead (nil
// otherwise). Reader goroutine.
//
// Queue the item before calling fetch: anything the fetch misses was then published
// after the item was queued and reaches the writer after it, as fan-out.
func (s *socket) resumeItem(sid string, lastSeq int64) (it outItem, fetch func()) {
	if n, ok := s.greeted[sid]; ok {
		delete(s.greeted, sid) // the first resume only: later ones follow what the socket wrote
		if lastSeq == n {
			s.g.metrics.resumes.WithLabelValues("current").Inc()
			return outItem{kind: itemResume, sid: sid, lastSeq: n, current: true}, nil
		}
	}
	s.g.metrics.resumes.WithLabelValues("replay").Inc()
	page := &pageFetch{after: lastSeq, done: make(chan struct{})}
	if s.prefetch == nil {
		s.prefetch = make(chan struct{}, prefetchers)
	}
	slots := s.prefetch
	return outItem{kind: itemResume, sid: sid, lastSeq: lastSeq, page: page}, func() {
		go func() {
			defer close(page.done)
			select {
			case slots <- struct{}{}:
			case <-s.ctx.Done():
				page.err = s.ctx.Err()
				return
			}
			defer func() { <-slots }()
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			defer cancel()
			page.res, page.err = s.g.sessions.ListMessages(ctx, &sessionv1.ListMessagesRequest{SessionId: sid, AfterSeq: page.after, Limit: replayPage})
		}()
	}
}

// writeContext bounds one write. It is not cancelled when the socket ends: the
// WebSocket library drops the connection when a write's context ends mid-write, and
// the close frame that tells the client why (revoked, restarting) would be lost. The
// writer checks the socket's end between frames instead.
func (s *socket) writeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(s.ctx), writeWait)
}

func (s *socket) writeRaw(b []byte) error {
	ctx, cancel := s.writeContext()
	defer cancel()
	return s.conn.Write(ctx, websocket.MessageText, b)
}

// head is the part of a fan-out frame the writer routes on.
type head struct {
	Type        string        `json:"type"`
	SessionID   string        `json:"session_id"`
	Seq         int64         `json:"seq"`
	Status      string        `json:"status"`
	AgentID     string        `json:"agent_id"`
	ClientMsgID string        `json:"client_msg_id"`
	Sender      frames.Sender `json:"sender"`
}

func (s *socket) write(it outItem) error {
	switch it.kind {
	case itemRaw:
		return s.writeRaw(it.payload)
	case itemPing:
		ctx, cancel := s.writeContext()
		defer cancel()
		if err := s.conn.Ping(ctx); err != nil {
			return err
		}
		s.qmu.Lock()
		s.pinger.Reset(pingEvery)
		s.qmu.Unlock()
		return nil
	case itemAckSweep:
		s.expireAcks()
		return nil
	case itemRelease:
		return s.release(it.sid)
	case itemFlush:
		return nil
	case itemResume:
		if err := s.resume(it); err != nil {
			return err
		}
		return s.release(it.sid) // what was held follows the replay
	}
	acceptedAt, body, err := frames.Decode(it.payload)
	if err != nil {
		return nil
	}
	var h head
	if err := json.Unmarshal(body, &h); err != nil {
		return nil
	}
	switch h.Type {
	case frames.TypeSession:
		return s.writeSessionFrame(h, body)
	case frames.TypeMessage:
		if s.agent {
			s.mu.Lock()
			ok := s.allowed[h.SessionID]
			s.mu.Unlock()
			if !ok {
				return nil
			}
		}
		if s.parked[h.SessionID] {
			return nil
		}
		last, known := s.lastSent[h.SessionID]
		if !known && s.holdLive(h.SessionID, it) {
			return nil
		}
		defer s.settleAck(h)
		if known && h.Seq <= last {
			return nil // already delivered (a replay, or a repeat after a crash)
		}
		if known && h.Seq > last+1 {
			if err := s.replay(h.SessionID, last, h.Seq-1, false, nil); err != nil {
				return err
			}
			if s.parked[h.SessionID] {
				return nil
			}
		}
		if err := s.writeRaw(body); err != nil {
			return err
		}
		if !known {
			s.setRunFrom(h.SessionID, h.Seq)
		}
		s.lastSent[h.SessionID] = h.Seq
		s.g.metrics.messagesOut.WithLabelValues(s.kind()).Inc()
		if !acceptedAt.IsZero() {
			s.g.metrics.deliveryLatency.WithLabelValues(s.kind()).Observe(time.Since(acceptedAt).Seconds())
		}
		return nil
	case frames.TypeTyping, frames.TypeRead:
		own := (s.agent && h.Sender.Type == frames.SenderAgent && h.Sender.ID == s.p.UserID) || (!s.agent && h.Sender.Type == frames.SenderCustomer)
		if own {
			return nil
		}
		if s.agent {
			s.mu.Lock()
			ok := s.allowed[h.SessionID]
			s.mu.Unlock()
			if !ok {
				return nil
			}
		}
		return s.writeRaw(body)
	default:
		return s.writeRaw(body)
	}
}

// holdLive holds back a live message of a session this socket has written nothing
// of yet, while the socket is new: a reconnecting client resumes each session it
// follows right after connecting, and a message written before its resume would
// reach the client ahead of the older ones the resume replays. It reports whether
// it held the message. Holding ends for a session at its resume or the client's first
// send there, and for all at resumeGrace after connecting or when maxHeld is reached.
// Runs on the writer.
func (s *socket) holdLive(sid string, it outItem) bool {
	if s.holdOver || s.live[sid] || !time.Now().Before(s.holdUntil) {
		return false
	}
	if s.nHeld >= maxHeld {
		_ = s.release("") // cannot fail: nothing is written while holding is over
		return false
	}
	if s.held == nil {
		s.held = map[string][]outItem{}
	}
	s.held[sid] = append(s.held[sid], it)
	s.nHeld++
	if s.releaser == nil {
		s.releaser = time.AfterFunc(time.Until(s.holdUntil), func() { s.push(outItem{kind: itemRelease}) })
	}
	return true
}

// release ends holding for sid, or for every session when sid is "", and writes what
// was held. Runs on the writer.
func (s *socket) release(sid string) error {
	if sid != "" {
		if s.live == nil {
			s.live = map[string]bool{}
		}
		s.live[sid] = true
		return s.flushHeld(sid)
	}
	s.holdOver = true
	for sid := range s.held {
		if err := s.flushHeld(sid); err != nil {
			return err
		}
	}
	return nil
}

// flushHeld writes the messages held for sid, in the order they came. A resume has
// usually replayed them already; the writer then drops them as delivered.
func (s *socket) flushHeld(sid string) error {
	items := s.held[sid]
	if len(items) == 0 {
		return nil
	}
	delete(s.held, sid)
	s.nHeld -= len(items)
	for _, it := range items {
		if err := s.write(it); err != nil {
			return err
		}
	}
	return nil
}

// resume serves a client's resume of a session.
func (s *socket) resume(it outItem) error {
	// The client has everything up to it.lastSeq, and everything this socket
	// already wrote: replay only what it has seen neither way.
	from := it.lastSeq
	var first *pageFetch
	if it.page != nil && it.page.after == from {
		first = it.page
	}
	if _, known := s.lastSent[it.sid]; it.current && !known && !s.parked[it.sid] {
		// Nothing newer than the client's last seq existed when the socket greeted it,
		// and nothing newer has been written since: the resume is done.
		s.setRunFrom(it.sid, from+1)
		s.lastSent[it.sid] = from
		return s.writeJSON(frames.Resumed{Type: frames.TypeResumed, SessionID: it.sid, LastSeq: from})
	}
	if last, ok := s.lastSent[it.sid]; ok && last > from && !s.parked[it.sid] {
		if start := s.runFrom[it.sid]; start > from+1 {
			// Live messages reached this socket before the client's resume did (a
			// resume later than resumeGrace after connecting, or one that came after
			// maxHeld messages): the client has up to from and start..last, and lacks
			// what lies between. It gets them now, out of order, rather than never.
			if err := s.replay(it.sid, from, start-1, false, first); err != nil {
				return err
			}
			if s.parked[it.sid] {
				return nil
			}
			s.lastSent[it.sid] = last
			s.setRunFrom(it.sid, from+1)
			return s.writeJSON(frames.Resumed{Type: frames.TypeResumed, SessionID: it.sid, LastSeq: last})
		}
		from, first = last, nil
	}
	delete(s.parked, it.sid)
	delete(s.lastSent, it.sid)
	return s.replay(it.sid, from, 0, true, first)
}

func (s *socket) writeSessionFrame(h head, body []byte) error {
	if !s.agent {
		s.mu.Lock()
		s.agentID = h.AgentID
		s.closed = h.Status == frames.StatusClosed
		s.mu.Unlock()
	}
	newlyMine := false
	if s.agent {
		s.mu.Lock()
		mine := h.AgentID == s.p.UserID && h.Status == frames.StatusAssigned
		newlyMine = mine && !s.allowed[h.SessionID]
		if mine {
			s.allowed[h.SessionID] = true
		} else if h.AgentID != s.p.UserID || h.Status == frames.StatusClosed {
			delete(s.allowed, h.SessionID)
		}
		s.mu.Unlock()
	}
	if err := s.writeRaw(body); err != nil {
		return err
	}
	if newlyMine {
		// A session just assigned to this agent: bring them the conversation so far.
		if _, known := s.lastSent[h.SessionID]; !known {
			return s.replay(h.SessionID, 0, 0, false, nil)
		}
	}
	return nil
}

// replay writes the session's messages after afterSeq (up to upTo when > 0). A resume
// ends with a "resumed" frame; a replay larger than replayLimit parks the session
// until the client has fetched history and resumes again. History that is not there
// yet (a batch still being persisted) is waited for briefly; if it does not come, the
// client is told to resume later rather than given a gap.
// first, when not nil, is the first page fetched ahead (first.after == afterSeq).
func (s *socket) replay(sid string, afterSeq, upTo int64, isResume bool, first *pageFetch) error {
	next := afterSeq
	if _, known := s.lastSent[sid]; !known {
		s.setRunFrom(sid, afterSeq+1) // the client has up to afterSeq, this run follows
	}
	sent := 0
	waited := 0
	for {
		var res *sessionv1.ListMessagesResponse
		var err error
		if first != nil {
			select {
			case <-first.done:
			case <-s.ctx.Done():
				return s.ctx.Err()
			}
			res, err = first.res, first.err
			first = nil
		} else {
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			res, err = s.g.sessions.ListMessages(ctx, &sessionv1.ListMessagesRequest{SessionId: sid, AfterSeq: next, Limit: replayPage})
			cancel()
		}
		if err != nil {
			if s.ctx.Err() != nil {
				return s.ctx.Err()
			}
			s.sendErrorNow("resync_required", "history could not be loaded; send resume with your last seq", sid)
			s.parked[sid] = true
			return nil
		}
		for _, m := range res.GetMessages() {
			if upTo > 0 && m.GetSeq() > upTo {
				break
			}
			if m.GetSeq() != next+1 {
				break // never skip: the rest is read again below
			}
			if sent == replayLimit {
				s.parked[sid] = true
				return s.writeJSON(frames.Resumed{Type: frames.TypeResumed, SessionID: sid, LastSeq: next, History: true})
			}
			frame := session.FrameFromProto(m)
			b, err := json.Marshal(frame)
			if err != nil {
				return err
			}
			if err := s.writeRaw(b); err != nil {
				return err
			}
			s.settleAck(head{SessionID: sid, Seq: frame.Seq, ClientMsgID: frame.ClientMsgID, Sender: frame.Sender})
			next = m.GetSeq()
			sent++
		}
		if upTo > 0 && next < upTo {
			// A gap before a live message: the missing ones must exist; wait for them.
			if waited++; waited > 20 {
				s.sendErrorNow("resync_required", "missing messages could not be loaded; send resume with your last seq", sid)
				s.parked[sid] = true
				return nil
			}
			select {
			case <-s.ctx.Done():
				return s.ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if !res.GetMore() || (upTo > 0 && next >= upTo) || len(res.GetMessages()) == 0 {
			break
		}
	}
	s.lastSent[sid] = next
	if isResume {
		return s.writeJSON(frames.Resumed{Type: frames.TypeResumed, SessionID: sid, LastSeq: next})
	}
	return nil
}

func (s *socket) writeJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.writeRaw(b)
}

// sendErrorNow writes an error frame from the writer goroutine itself.
func (s *socket) sendErrorNow(code, msg, sid string) {
	s.g.metrics.wsErrors.WithLabelValues(code).Inc()
	_ = s.writeJSON(frames.Error{Type: frames.TypeError, Code: code, Message: msg, SessionID: sid})
}
