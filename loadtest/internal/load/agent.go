package load

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/helmdesk/helmdesk/pkg/client"
)

// retryHTTP runs a REST call up to 4 times with backoff, counting each failure.
func (r *runner) retryHTTP(ctx context.Context, op string, call func(context.Context) error) error {
	var err error
	var bo backoff
	for attempt := 0; attempt < 4; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = call(cctx)
		cancel()
		r.m.ops.Add(1)
		if err == nil {
			return nil
		}
		r.m.errf("http:"+op+":"+httpCause(err), err)
		var stop backoffStop
		if errors.As(err, &stop) || ctx.Err() != nil || !sleep(ctx, 3*bo.next()) {
			break
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// setupAgent creates agent idx, signs it in, connects its socket and puts it
// online (the socket first, so no assignment happens before it can be seen).
func (r *runner) setupAgent(ctx context.Context, idx, capacity int) (*agent, *client.Socket, error) {
	a := &agent{idx: idx, email: fmt.Sprintf("lt-%s-a%d@loadtest.example", r.runID, idx), convs: map[string]*conv{}, pending: map[string]bool{}}
	password := "pw-" + r.runID + "-" + itoa(idx)
	err := r.retryHTTP(ctx, "create_agent", func(ctx context.Context) error {
		u, err := r.admin.CreateAgent(ctx, client.NewAgent{Email: a.email, Password: password, Name: fmt.Sprintf("Load agent %d", idx), MaxSessions: capacity})
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.Status == 409 {
			return nil // created by an attempt whose answer was lost; signing in finds it
		}
		a.id = u.ID
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	var token string
	if err := r.retryHTTP(ctx, "login", func(ctx context.Context) (err error) {
		token, err = r.api.Login(ctx, a.email, password)
		return err
	}); err != nil {
		return nil, nil, err
	}
	a.api = r.api.WithToken(token)
	if a.id == "" {
		var me client.User
		if err := r.retryHTTP(ctx, "me", func(ctx context.Context) error {
			return a.api.Do(ctx, "GET", "/api/v1/me", nil, &me)
		}); err != nil {
			return nil, nil, err
		}
		a.id = me.ID
	}
	var sock *client.Socket
	if err := r.retryHTTP(ctx, "agent_socket", func(ctx context.Context) (err error) {
		sock, err = a.api.DialAgent(ctx, token)
		return err
	}); err != nil {
		return nil, nil, err
	}
	if err := r.retryHTTP(ctx, "agent_status", func(ctx context.Context) error {
		_, err := a.api.SetStatus(ctx, a.id, "online")
		return err
	}); err != nil {
		_ = sock.CloseNow()
		return nil, nil, err
	}
	a.sock, a.live, a.conn = sock, true, 1
	return a, sock, nil
}

// agentLoop reads agent a's socket until the run closes, reconnecting and resuming
// every session the agent holds when the socket drops.
func (r *runner) agentLoop(ctx context.Context, a *agent, sock *client.Socket) {
	defer r.readers.Done()
	var bo backoff
	for {
		err := r.readAgent(ctx, a, sock)
		a.mu.Lock()
		wasLive := a.live
		a.sock, a.live = nil, false
		a.mu.Unlock()
		if wasLive {
			r.m.agentsLive.Add(-1)
		}
		_ = sock.CloseNow()
		if r.stopping(ctx) {
			return
		}
		cause := classify(err)
		r.m.errf("socket:drop:"+cause, err)
		a.mu.Lock()
		prev := a.ep
		held := make([]*conv, 0, len(a.convs))
		for _, c := range a.convs {
			held = append(held, c)
		}
		a.mu.Unlock()
		for _, c := range held {
			r.trace(c, agentS, "agent socket dropped: %s", cause)
		}
		ep := r.m.dropped(prev, "agent", a.email, cause, time.Now())
		// The sessions the agent holds are resumed in the upgrade request, each from
		// what the agent has (nothing reads into them while no socket is open), up
		// to the gateway's limit; the rest with resume frames once connected.
		type from struct {
			c    *conv
			last int64
		}
		resumes := make([]from, 0, len(held))
		var opts []client.DialOption
		for _, c := range held {
			c.mu.Lock()
			last := c.sides[agentS].lastSeq
			c.mu.Unlock()
			resumes = append(resumes, from{c, last})
			if len(opts) < maxConnectResumes {
				opts = append(opts, client.ResumeSession(c.sid, last))
			}
		}
		var dialed time.Time
		for {
			sleep(ctx, bo.next())
			if r.stopping(ctx) {
				return
			}
			dialed = time.Now()
			dctx, cancel := context.WithTimeout(ctx, dialTimeout)
			sock, err = a.api.DialAgent(dctx, a.api.Token, opts...)
			cancel()
			r.m.ops.Add(1)
			if err == nil {
				break
			}
			r.m.errf("socket:dial:"+classify(err), err)
		}
		bo.reset()
		now := time.Now()
		r.m.reconnects[agentS].Add(1)
		r.m.connected(ep, dialed, now)
		a.mu.Lock()
		a.sock, a.live = sock, true
		a.conn++
		a.pending = make(map[string]bool, len(resumes))
		for _, f := range resumes {
			a.pending[f.c.sid] = true
		}
		a.ep = ep
		if len(resumes) == 0 {
			a.ep = nil
		}
		a.mu.Unlock()
		r.m.agentsLive.Add(1)
		if len(resumes) == 0 {
			r.m.resumed(ep, now)
		}
		for i, f := range resumes {
			f.c.mu.Lock()
			f.c.traceLocked(agentS, now.Sub(r.start), "agent connection %d, resume last_seq=%d", a.conn, f.last)
			f.c.mu.Unlock()
			if i >= maxConnectResumes {
				r.q.push(job{kind: jobResume, c: f.c, from: agentS, sock: sock, lastSeq: f.last})
			}
		}
	}
}

// maxConnectResumes is the most resumes the gateway takes in an upgrade request.
const maxConnectResumes = 500

// convOf returns the conversation of a session the agent holds, else the run's.
func (r *runner) convOf(a *agent, sid string) *conv {
	a.mu.Lock()
	c := a.convs[sid]
	a.mu.Unlock()
	if c == nil {
		c = r.lookupConv(sid)
	}
	return c
}

func (r *runner) readAgent(ctx context.Context, a *agent, sock *client.Socket) error {
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
		case "session":
			r.onAgentSession(a, sock, f)
		case "message":
			c := r.convOf(a, f.SessionID)
			if c == nil {
				r.m.foreign.Add(1)
				continue
			}
			r.onMessage(c, agentS, f, now, false)
		case "ack":
			if c := r.convOf(a, f.SessionID); c != nil {
				r.onAck(c, agentS, f.ClientMsgID, now)
			}
		case "resumed":
			r.m.resumes.Add(1)
			c := r.convOf(a, f.SessionID)
			if c == nil {
				continue
			}
			r.trace(c, agentS, "resumed last_seq=%d history=%v", f.LastSeq, f.History)
			if f.History {
				r.fetchHistory(ctx, c, agentS, a.api)
				c.mu.Lock()
				last := c.sides[agentS].lastSeq
				c.mu.Unlock()
				r.q.push(job{kind: jobResume, c: c, from: agentS, sock: sock, lastSeq: last})
				continue
			}
			a.mu.Lock()
			was := a.sock == sock && a.pending[f.SessionID]
			delete(a.pending, f.SessionID)
			var ep *episode
			if was && len(a.pending) == 0 {
				ep, a.ep = a.ep, nil
			}
			a.mu.Unlock()
			if was {
				r.resendUnacked(c, agentS)
			}
			if ep != nil {
				r.m.resumed(ep, now)
			}
		case "error":
			r.onErrorFrame(r.convOf(a, f.SessionID), agentS, sock, f)
		}
	}
}

// onAgentSession tracks the sessions assigned to the agent. Like the console, it follows
// a session it learns of from a reconnected socket's greeting (assigned while it was
// away) with a resume: the gateway replays a session unasked only when the assignment
// reaches a live socket.
func (r *runner) onAgentSession(a *agent, sock *client.Socket, f client.Frame) {
	if f.SessionID == "" {
		return
	}
	if f.AgentID == a.id && f.Status == "assigned" {
		c := r.convFor(f.SessionID)
		c.mu.Lock()
		if c.agent == nil {
			c.agent = a
		}
		last := c.sides[agentS].lastSeq
		c.mu.Unlock()
		a.mu.Lock()
		_, known := a.convs[f.SessionID]
		a.convs[f.SessionID] = c
		reconnected := a.conn > 1 && a.sock == sock
		a.mu.Unlock()
		if !known && reconnected {
			r.q.push(job{kind: jobResume, c: c, from: agentS, sock: sock, lastSeq: last})
		}
		return
	}
	a.mu.Lock()
	delete(a.convs, f.SessionID)
	a.mu.Unlock()
}
