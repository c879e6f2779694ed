package load

import (
	"context"
	"time"

	"github.com/helmdesk/helmdesk/pkg/client"

	"github.com/helmdesk/helmdesk/loadtest/internal/check"
)

const dialTimeout = 10 * time.Second

// createSession starts customer idx's session, retrying a few times; nil when it
// could not.
func (r *runner) createSession(ctx context.Context, idx int) *conv {
	select {
	case r.createSem <- struct{}{}:
	case <-ctx.Done():
		return nil
	}
	defer func() { <-r.createSem }()
	var bo backoff
	for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
		started := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := r.api.StartSession(cctx, client.StartSession{UserID: "lt-" + r.runID + "-c" + itoa(idx)})
		cancel()
		r.m.ops.Add(1)
		if err == nil {
			now := time.Now()
			r.m.create.Record(now.Sub(started))
			r.m.sessionCreated(now)
			c := r.convFor(res.SessionID)
			c.mu.Lock()
			c.idx, c.token, c.started = idx, res.CustomerToken, started
			if c.agent == nil && res.AgentID != "" {
				c.agent = r.agentByID[res.AgentID]
			}
			c.mu.Unlock()
			r.addCustomer(c)
			return c
		}
		if ctx.Err() != nil {
			break // the ramp timed out: abandoned, not an error of the target
		}
		r.m.errf("http:create_session:"+httpCause(err), err)
		if !sleep(ctx, 2*bo.next()) {
			break
		}
	}
	r.m.sessionsFailed.Add(1)
	return nil
}

// customer runs one customer: create the session (giving up when rampCtx ends),
// connect, then read (and reconnect and resume) until the run closes. Its messages
// are paced by the scheduler and written by the senders; this goroutine only reads.
func (r *runner) customer(ctx, rampCtx context.Context, idx int, connected func()) {
	defer r.readers.Done()
	c := r.createSession(rampCtx, idx)
	if c == nil {
		connected()
		return
	}
	var bo backoff
	var ep *episode
	first := true
	for {
		if r.stopping(ctx) {
			if first {
				connected()
			}
			return
		}
		// A reconnect resumes in the upgrade request, from what this side has: nothing
		// else reads into it while no socket is open.
		var opts []client.DialOption
		c.mu.Lock()
		lastSeq := c.sides[customer].lastSeq
		c.mu.Unlock()
		if !first {
			opts = append(opts, client.ResumeFrom(lastSeq))
		}
		dialed := time.Now()
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		sock, err := r.api.DialCustomer(dctx, c.token, opts...)
		cancel()
		r.m.ops.Add(1)
		if err != nil {
			if r.stopping(ctx) {
				continue
			}
			r.m.errf("socket:dial:"+classify(err), err)
			if first {
				// Count the customer as having had its turn; it keeps trying.
				connected()
				connected = func() {}
			}
			sleep(ctx, bo.next())
			continue
		}
		bo.reset()
		now := time.Now()
		c.mu.Lock()
		c.sock = sock
		c.conn++
		c.traceLocked(customer, now.Sub(r.start), "c%d connected", c.conn)
		if first {
			c.live = true
		} else {
			c.traceLocked(customer, now.Sub(r.start), "c%d resume last_seq=%d", c.conn, lastSeq)
		}
		c.mu.Unlock()
		if first {
			first = false
			r.m.customersLive.Add(1)
			r.sched.add <- c
			connected()
		} else {
			r.m.reconnects[customer].Add(1)
			r.m.connected(ep, dialed, now)
		}
		err = r.readCustomer(ctx, c, sock, ep)
		c.mu.Lock()
		wasLive := c.live
		c.sock, c.live = nil, false
		c.mu.Unlock()
		if wasLive {
			r.m.customersLive.Add(-1)
		}
		_ = sock.CloseNow()
		if r.stopping(ctx) {
			return
		}
		cause := classify(err)
		r.m.errf("socket:drop:"+cause, err)
		r.trace(c, customer, "dropped: %s", cause)
		ep = r.m.dropped(ep, "customer", c.sid, cause, time.Now())
		sleep(ctx, bo.next())
	}
}

func (r *runner) readCustomer(ctx context.Context, c *conv, sock *client.Socket, ep *episode) error {
	for {
		f, err := sock.Read(ctx)
		if err != nil {
			if isDecodeError(err) {
				r.m.errf("socket:bad_frame", err)
				continue
			}
			return err
		}
		now := time.Now()
		switch f.Type {
		case "message":
			r.onMessage(c, customer, f, now, false)
		case "ack":
			r.onAck(c, customer, f.ClientMsgID, now)
		case "session":
			if f.AgentID != "" {
				c.mu.Lock()
				if c.agent == nil {
					c.agent = r.agentByID[f.AgentID]
				}
				c.mu.Unlock()
			}
		case "resumed":
			r.m.resumes.Add(1)
			r.trace(c, customer, "resumed last_seq=%d history=%v", f.LastSeq, f.History)
			if f.History {
				r.fetchHistory(ctx, c, customer, r.api.WithToken(c.token))
				c.mu.Lock()
				last := c.sides[customer].lastSeq
				c.mu.Unlock()
				r.q.push(job{kind: jobResume, c: c, from: customer, sock: sock, lastSeq: last})
				continue
			}
			c.mu.Lock()
			became := c.sock == sock && !c.live
			if became {
				c.live = true
			}
			c.mu.Unlock()
			if became {
				r.m.customersLive.Add(1)
				r.m.resumed(ep, now)
				r.resendUnacked(c, customer)
			}
		case "error":
			r.onErrorFrame(c, customer, sock, f)
		}
	}
}

// fetchHistory reads the messages a resumed{history:true} told the side to fetch
// over REST, and records them as received.
func (r *runner) fetchHistory(ctx context.Context, c *conv, s check.Side, api *client.Client) {
	r.m.historyFetches.Add(1)
	c.mu.Lock()
	after := c.sides[s].lastSeq
	c.mu.Unlock()
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	msgs, err := api.AllMessages(hctx, c.sid, after)
	r.m.ops.Add(1)
	if err != nil {
		r.m.errf("http:history_fetch:"+httpCause(err), err)
		return
	}
	now := time.Now()
	for _, m := range msgs {
		r.onMessage(c, s, client.Frame{Type: "message", SessionID: m.SessionID, Seq: m.Seq, ClientMsgID: m.ClientMsgID, Sender: m.Sender, Text: m.Text}, now, true)
	}
}

// onMessage records a message frame a side received, measures its delivery, and
// has the agent answer each customer message the first time it arrives.
func (r *runner) onMessage(c *conv, recv check.Side, f client.Frame, now time.Time, fromHistory bool) {
	var from check.Side
	known := true
	switch f.Sender.Type {
	case "customer":
		from = customer
	case "agent":
		from = agentS
	default:
		known = false
	}
	rec := check.Received{Seq: f.Seq, ClientMsgID: f.ClientMsgID, Sender: f.Sender.Type, FromHistory: fromHistory}
	c.mu.Lock()
	switch {
	case fromHistory:
	case recv == customer:
		rec.Conn, rec.Resuming = c.conn, !c.live
	case c.agent != nil:
		a := c.agent
		a.mu.Lock()
		rec.Conn, rec.Resuming = a.conn, a.pending[c.sid]
		a.mu.Unlock()
	}
	st := &c.sides[recv]
	st.recv = append(st.recv, rec)
	if rec.Conn != st.lastConn && !fromHistory {
		st.lastConn = rec.Conn
		c.traceLocked(recv, now.Sub(r.start), "c%d first message seq=%d (resuming=%v, had %d)", rec.Conn, rec.Seq, rec.Resuming, st.lastSeq)
	}
	if f.Seq > st.lastSeq {
		st.lastSeq = f.Seq
	}
	first := false
	var latency time.Duration
	var sentAt time.Time
	if known && from != recv {
		if m := c.sides[from].byID[f.ClientMsgID]; m != nil && !m.delivered {
			m.delivered, first = true, true
			c.undelivered--
			t0 := m.firstSent
			if t0.IsZero() {
				t0 = m.created
			}
			latency, sentAt = now.Sub(t0), t0
		}
	}
	firstReply := time.Duration(-1)
	if recv == customer && known && from == agentS && !c.replied {
		c.replied = true
		firstReply = now.Sub(c.started)
	}
	reply := first && recv == agentS && from == customer && !r.stopSending.Load()
	c.mu.Unlock()
	if first {
		r.m.delivered[from].Add(1)
		r.m.recordLatency(from, sentAt, latency)
	}
	if firstReply >= 0 {
		r.m.firstReply.Record(firstReply)
	}
	if reply {
		r.newMessage(c, agentS)
	}
}

func (r *runner) onAck(c *conv, s check.Side, id string, now time.Time) {
	c.mu.Lock()
	m := c.sides[s].byID[id]
	if m == nil || m.acked {
		c.mu.Unlock()
		return
	}
	m.acked = true
	delete(c.sides[s].unacked, id)
	sentAt := m.lastSent
	c.mu.Unlock()
	r.m.acked[s].Add(1)
	if !sentAt.IsZero() {
		r.m.ack.Record(now.Sub(sentAt))
		r.m.ackWindow.Record(now.Sub(sentAt))
	}
}

// onErrorFrame counts an error frame and does what it asks: resend a message that
// was not accepted (same client_msg_id), or resume again.
func (r *runner) onErrorFrame(c *conv, s check.Side, sock *client.Socket, f client.Frame) {
	r.m.err("frame:" + f.Code)
	if c == nil || r.closing.Load() {
		return
	}
	r.trace(c, s, "error frame %s client_msg_id=%q: %s", f.Code, f.ClientMsgID, f.Message)
	if f.ClientMsgID != "" {
		if !retryable(f.Code) {
			return
		}
		c.mu.Lock()
		m := c.sides[s].byID[f.ClientMsgID]
		if m == nil || m.acked {
			c.mu.Unlock()
			return
		}
		m.retries++
		delay := min(time.Duration(m.retries)*200*time.Millisecond, 2*time.Second)
		c.mu.Unlock()
		time.AfterFunc(delay, func() {
			if !r.closing.Load() {
				r.q.push(job{kind: jobMessage, c: c, from: s, m: m})
			}
		})
		return
	}
	// A resume that could not be served (resync_required, or the session service
	// unavailable): ask again shortly, from what this side has now.
	if f.Code == "resync_required" || r.resumePending(c, s, sock) {
		time.AfterFunc(500*time.Millisecond, func() {
			if r.closing.Load() {
				return
			}
			c.mu.Lock()
			last := c.sides[s].lastSeq
			c.mu.Unlock()
			r.q.push(job{kind: jobResume, c: c, from: s, sock: sock, lastSeq: last})
		})
	}
}

// resumePending reports whether side s of c is still waiting for a resumed frame
// on sock.
func (r *runner) resumePending(c *conv, s check.Side, sock *client.Socket) bool {
	if s == customer {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.sock == sock && !c.live
	}
	c.mu.Lock()
	a := c.agent
	c.mu.Unlock()
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sock == sock && a.pending[c.sid]
}
