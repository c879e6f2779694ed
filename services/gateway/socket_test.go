package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/helmdesk/helmdesk/pkg/fault"
	"github.com/helmdesk/helmdesk/pkg/frames"
)

// socketPair returns a server-side socket (its writer only, no reader or hub) and the
// client end of its connection.
func socketPair(t *testing.T, qlimit int) (*socket, *websocket.Conn) {
	t.Helper()
	type accepted struct {
		conn *websocket.Conn
		out  *batchWriter
	}
	conns := make(chan accepted, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lean := &leanHijacker{ResponseWriter: w}
		c, err := websocket.Accept(lean, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		conns <- accepted{c, lean.out}
	}))
	t.Cleanup(srv.Close)
	client, _, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	client.SetReadLimit(1 << 20)
	t.Cleanup(func() { client.CloseNow() })
	a := <-conns
	conn := a.conn
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &socket{g: &Gateway{}, conn: conn, out: a.out, qlimit: qlimit, ctx: ctx, cancel: cancel,
		allowed: map[string]bool{}, lastSent: map[string]int64{}, parked: map[string]bool{}, pending: map[string]*pendingAck{}}
	t.Cleanup(func() {
		cancel(nil)
		s.stop()
		conn.CloseNow()
	})
	return s, client
}

func fanout(t *testing.T, body string) []byte {
	t.Helper()
	b, err := frames.Encode(time.Time{}, map[string]string{"type": "notice", "body": body})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writerState reports whether a writer runs and whether a queue is held.
func writerState(s *socket) (writing, queued bool) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.writing, s.queue != nil
}

func TestIdleSocketHoldsNoWriterOrQueue(t *testing.T) {
	s, client := socketPair(t, 64)
	for _, body := range []string{"one", "two", "three"} {
		s.deliver("ch", fanout(t, body))
	}
	for _, want := range []string{"one", "two", "three"} {
		_, b, err := client.Read(t.Context())
		if err != nil || !strings.Contains(string(b), want) {
			t.Fatalf("read %q, %v; want %s", b, err, want)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		writing, queued := writerState(s)
		if !writing && !queued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the queue drained: writing %v, queue held %v", writing, queued)
		}
		time.Sleep(time.Millisecond)
	}
	// The next frame starts a writer again.
	s.deliver("ch", fanout(t, "four"))
	if _, b, err := client.Read(t.Context()); err != nil || !strings.Contains(string(b), "four") {
		t.Fatalf("read %q, %v", b, err)
	}
}

func TestSlowSocketIsClosedWithResumeHint(t *testing.T) {
	s, _ := socketPair(t, 8)
	// The client reads nothing: once the connection's buffers are full the writer
	// blocks, the queue fills, and the next delivery ends the socket.
	big := strings.Repeat("x", 256<<10)
	for i := 0; i < 1000 && s.ctx.Err() == nil; i++ {
		s.deliver("ch", fanout(t, big))
	}
	if !errors.Is(context.Cause(s.ctx), errSlowConsumer) {
		t.Fatalf("cause = %v, want the slow-consumer error", context.Cause(s.ctx))
	}
}

// A socket revoked while a frame is being written still ends with its close frame:
// the write finishes and the client learns not to reconnect.
func TestRevokedMidWriteEndsWithTheCloseFrame(t *testing.T) {
	s, client := socketPair(t, 8)
	client.SetReadLimit(8 << 20)
	closed := s.closeWhenEnded()
	// Larger than the connection's buffers: with the client not reading yet, the
	// writer is stuck in this write.
	s.enqueue(outItem{kind: itemRaw, payload: []byte(`{"type":"notice","body":"` + strings.Repeat("z", 4<<20) + `"}`)})
	time.Sleep(200 * time.Millisecond)
	if writing, _ := writerState(s); !writing {
		t.Fatal("the writer finished a 4 MiB frame nobody read")
	}
	s.cancel(errRevoked)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, b, err := client.Read(ctx); err != nil || len(b) < 4<<20 {
		t.Fatalf("the frame in flight: %d bytes, %v", len(b), err)
	}
	_, _, err := client.Read(ctx)
	if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation {
		t.Fatalf("socket ended with %v (close %d), want 1008", err, code)
	}
	<-closed
}

func TestReaderWaitsForRoomInTheQueue(t *testing.T) {
	s, client := socketPair(t, 2)
	big := strings.Repeat("y", 512<<10)
	// Fill the connection and the queue without reading, until the writer is stuck
	// (the queue stays full).
	queued := func() int {
		s.qmu.Lock()
		defer s.qmu.Unlock()
		return len(s.queue)
	}
	for stuck := 0; stuck < 3; {
		if queued() < s.qlimit {
			stuck = 0
			s.enqueue(outItem{kind: itemRaw, payload: []byte(`{"type":"notice","body":"` + big + `"}`)})
			continue
		}
		stuck++
		time.Sleep(100 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.enqueue(outItem{kind: itemRaw, payload: []byte(`{"type":"last"}`)})
	}()
	select {
	case <-done:
		t.Fatal("enqueue returned while the queue was full")
	case <-time.After(200 * time.Millisecond):
	}
	if s.ctx.Err() != nil {
		t.Fatalf("a full queue ended the socket from the reader's side: %v", context.Cause(s.ctx))
	}
	// Reading makes room; the waiting frame goes out last, nothing is lost.
	for {
		_, b, err := client.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if string(b) == `{"type":"last"}` {
			break
		}
	}
	<-done
}

// Sockets open in turns: a request waits for a setup slot, waiters get slots in the
// order they came, and one that waits too long is refused with 503 busy.
func TestSocketSetupsTakeTurns(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := &Gateway{setups: make(chan struct{}, 1), setupWait: time.Second,
		metrics: &metrics{setupWait: promauto.With(reg).NewHistogram(prometheus.HistogramOpts{Name: "wait"})}}
	first, err := g.setupSlot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 3)
	for i := range 3 {
		go func() {
			release, err := g.setupSlot(t.Context())
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			release()
		}()
		// Each waiter is queued before the next one starts.
		for deadline := time.Now().Add(time.Second); goroutinesIn("gateway.(*Gateway).setupSlot") != i+1; {
			if time.Now().After(deadline) {
				t.Fatalf("waiter %d never queued", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	first()
	first() // giving a slot back twice frees it once
	for want := range 3 {
		if got := <-order; got != want {
			t.Fatalf("waiter %d got its slot in turn %d", got, want)
		}
	}

	hold, err := g.setupSlot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer hold()
	start := time.Now()
	_, err = g.setupSlot(t.Context())
	if fe := fault.As(err); fe == nil || fe.Kind != fault.Unavailable || fe.Code != "busy" {
		t.Fatalf("waiting past the limit: %v, want unavailable/busy", err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("refused after %v, want after the 1s wait", waited)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := g.setupSlot(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("a client gone while waiting: %v, want context.Canceled", err)
	}
}

// goroutinesIn is how many goroutines have fn (as stack traces name it) on their stack.
func goroutinesIn(fn string) int {
	var buf [1 << 18]byte
	n := runtime.Stack(buf[:], true)
	return strings.Count(string(buf[:n]), fn+"(")
}

// Frames the writer finds queued together go out in one write; a ping among them
// sends what comes before it first, since it waits for its pong.
func TestQueuedFramesGoOutTogether(t *testing.T) {
	s, client := socketPair(t, 64)
	var writes atomic.Int64
	s.out.conn = countingConn{s.out.conn, &writes} // before any writer runs
	read := func(want string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if _, b, err := client.Read(ctx); err != nil || !strings.Contains(string(b), want) {
			t.Fatalf("read %q, %v; want %s", b, err, want)
		}
	}
	idle := func() {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if writing, _ := writerState(s); !writing {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the writer did not finish")
			}
		}
	}
	s.qmu.Lock()
	for i := range 10 {
		s.pushLocked(outItem{kind: itemFanout, payload: fanout(t, "greeting-"+strconv.Itoa(i))})
	}
	s.qmu.Unlock()
	for i := range 10 {
		read("greeting-" + strconv.Itoa(i))
	}
	idle()
	if n := writes.Load(); n != 1 {
		t.Fatalf("%d writes for 10 frames queued together, want 1", n)
	}

	// The server reads the client's pong.
	go func() {
		for {
			if _, _, err := s.conn.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	writes.Store(0)
	s.qmu.Lock()
	s.pushLocked(outItem{kind: itemFanout, payload: fanout(t, "before")})
	s.pushLocked(outItem{kind: itemPing})
	s.pushLocked(outItem{kind: itemFanout, payload: fanout(t, "after")})
	s.pinger = time.AfterFunc(time.Hour, func() {})
	s.qmu.Unlock()
	read("before") // the client answers the ping while it reads
	read("after")
	idle()
	if s.ctx.Err() != nil {
		t.Fatalf("the ping ended the socket: %v", context.Cause(s.ctx))
	}
	if n := writes.Load(); n != 3 {
		t.Fatalf("%d writes for a frame, a ping and a frame, want 3", n)
	}
}
