package load

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/helmdesk/helmdesk/pkg/client"

	"github.com/helmdesk/helmdesk/loadtest/internal/check"
)

// jobKind is what a send job writes.
type jobKind uint8

const (
	jobMessage jobKind = iota // a message (first write or resend)
	jobResume                 // a resume frame
)

// job is one frame to write. Readers never write to their socket themselves (a
// reader blocked on a write could deadlock against a server blocked on writing to
// it): they hand frames to the shared senders.
type job struct {
	kind jobKind
	c    *conv
	from check.Side
	m    *msg
	// jobResume: the socket the resume is for (skipped if it has been replaced).
	sock    *client.Socket
	lastSeq int64
}

// queue is an unbounded FIFO of jobs shared by the sender goroutines.
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []job
	head   int
	closed bool
}

func newQueue() *queue {
	q := &queue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) push(j job) {
	q.mu.Lock()
	if !q.closed {
		q.items = append(q.items, j)
		q.cond.Signal()
	}
	q.mu.Unlock()
}

// pop blocks until a job is there or the queue is closed.
func (q *queue) pop() (job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.items) && !q.closed {
		q.cond.Wait()
	}
	if q.head == len(q.items) {
		return job{}, false
	}
	j := q.items[q.head]
	q.items[q.head] = job{}
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 4096 && q.head > len(q.items)/2 {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
	return j, true
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

const writeTimeout = 5 * time.Second

// sender writes jobs until the queue closes.
func (r *runner) sender(ctx context.Context) {
	for {
		j, ok := r.q.pop()
		if !ok {
			return
		}
		switch j.kind {
		case jobMessage:
			r.writeMessage(ctx, j)
		case jobResume:
			r.writeResume(ctx, j)
		}
	}
}

// socketFor returns the live socket a side of c writes on, or nil.
func (c *conv) socketFor(from check.Side) *client.Socket {
	if from == customer {
		if c.live {
			return c.sock
		}
		return nil
	}
	if c.agent == nil {
		return nil
	}
	a := c.agent
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.live {
		return a.sock
	}
	return nil
}

func (r *runner) writeMessage(ctx context.Context, j job) {
	c, m := j.c, j.m
	c.mu.Lock()
	if m.acked {
		c.mu.Unlock()
		return
	}
	sock := c.socketFor(j.from)
	if sock == nil {
		// Not connected: the message stays unacked and is resent after the resume.
		c.mu.Unlock()
		return
	}
	now := time.Now()
	first := m.attempts == 0
	m.attempts++
	if first {
		m.firstSent = now
	}
	m.lastSent = now
	c.mu.Unlock()
	if first {
		r.m.sent[j.from].Add(1)
	} else {
		r.m.resends.Add(1)
	}
	r.m.ops.Add(1)
	sid := ""
	if j.from == agentS {
		sid = c.sid
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	err := sock.SendMessage(wctx, sid, m.id, m.text)
	cancel()
	if err != nil && ctx.Err() == nil && !r.closing.Load() {
		// The reader notices the broken socket and reconnects; the message is resent
		// after the resume because it has no ack.
		r.m.err("socket:write:" + classify(err))
	}
}

func (r *runner) writeResume(ctx context.Context, j job) {
	c := j.c
	c.mu.Lock()
	current := c.sock
	if j.from == agentS {
		current = nil
		if c.agent != nil {
			c.agent.mu.Lock()
			current = c.agent.sock
			c.agent.mu.Unlock()
		}
	}
	c.mu.Unlock()
	if current != j.sock {
		return // that socket is gone; its replacement resumes by itself
	}
	r.trace(c, j.from, "resume last_seq=%d", j.lastSeq)
	sid := ""
	if j.from == agentS {
		sid = j.c.sid
	}
	r.m.ops.Add(1)
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	err := j.sock.Resume(wctx, sid, j.lastSeq)
	cancel()
	if err != nil && ctx.Err() == nil && !r.closing.Load() {
		r.m.err("socket:write:" + classify(err))
	}
}

// newMessage creates the next message of a side and queues it.
func (r *runner) newMessage(c *conv, from check.Side) {
	c.mu.Lock()
	s := &c.sides[from]
	s.nextID++
	prefix := "c"
	if from == agentS {
		prefix = "a"
	}
	id := prefix + itoa(s.nextID)
	m := &msg{id: id, text: r.text(id), created: time.Now()}
	s.sent = append(s.sent, m)
	s.byID[id] = m
	s.unacked[id] = m
	c.undelivered++
	c.mu.Unlock()
	r.m.created[from].Add(1)
	r.q.push(job{kind: jobMessage, c: c, from: from, m: m})
}

// resendUnacked queues every unacknowledged message of a side again (same
// client_msg_id), after a resume.
func (r *runner) resendUnacked(c *conv, from check.Side) {
	c.mu.Lock()
	ms := make([]*msg, 0, len(c.sides[from].unacked))
	for _, m := range c.sides[from].unacked {
		ms = append(ms, m)
	}
	c.mu.Unlock()
	// Oldest first, so the resent messages keep their order.
	sortByCreated(ms)
	for _, m := range ms {
		r.q.push(job{kind: jobMessage, c: c, from: from, m: m})
	}
}

// scheduler paces every customer's messages from one goroutine: a heap of the next
// send time of each customer.
type scheduler struct {
	r        *runner
	add      chan *conv
	interval time.Duration
	jitter   float64
	h        convHeap
}

func (s *scheduler) next(from time.Time) time.Time {
	d := float64(s.interval)
	if s.jitter > 0 {
		d *= 1 + s.jitter*(2*rand.Float64()-1)
	}
	return from.Add(time.Duration(d))
}

// run sends until ctx is done or the message budget is spent; it reports why it
// stopped.
func (s *scheduler) run(ctx context.Context, budget int) string {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	created := 0
	for {
		var wait <-chan time.Time
		if len(s.h) > 0 {
			d := time.Until(s.h[0].nextAt)
			if d <= 0 {
				c := s.h[0]
				if budget > 0 && created >= budget {
					return "messages"
				}
				c.mu.Lock()
				live := c.live
				c.mu.Unlock()
				if live {
					s.r.newMessage(c, customer)
					created++
				}
				now := time.Now()
				c.nextAt = s.next(c.nextAt)
				if c.nextAt.Before(now.Add(-time.Second)) {
					// Far behind (the tool was starved): do not burst to catch up.
					c.nextAt = s.next(now)
				}
				heap.Fix(&s.h, 0)
				if ctx.Err() != nil {
					return "duration"
				}
				continue
			}
			timer.Reset(d)
			wait = timer.C
		}
		select {
		case <-ctx.Done():
			return "duration"
		case c := <-s.add:
			// Start at a random point of the first interval so customers do not march
			// in step.
			c.nextAt = time.Now().Add(time.Duration(rand.Float64() * float64(s.interval)))
			heap.Push(&s.h, c)
		case <-wait:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

type convHeap []*conv

func (h convHeap) Len() int           { return len(h) }
func (h convHeap) Less(i, j int) bool { return h[i].nextAt.Before(h[j].nextAt) }
func (h convHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *convHeap) Push(x any) {
	c := x.(*conv)
	c.heapIdx = len(*h)
	*h = append(*h, c)
}
func (h *convHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
