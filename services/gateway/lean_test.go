package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// countingConn counts the writes made on a connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// countingListener counts the writes made on every connection it accepts.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, &l.writes}, nil
}

// pipeWriter is a batchWriter over one end of a pipe, and a reader of the other.
func pipeWriter(t *testing.T) (*batchWriter, net.Conn, *atomic.Int64) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	var writes atomic.Int64
	return &batchWriter{conn: countingConn{a, &writes}}, b, &writes
}

// readAll reads the peer until the writer's end closes, and then sends what it read.
func readAll(peer net.Conn) <-chan []byte {
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	return got
}

func TestBatchWriterSendsWhatItHeldInOneWrite(t *testing.T) {
	w, peer, writes := pipeWriter(t)
	got := readAll(peer)
	write := func(s string) {
		t.Helper()
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("write %q: %d, %v", s, n, err)
		}
	}
	write("a") // not holding: written at once
	w.Hold()
	for _, s := range []string{"b", "c", "d"} {
		write(s)
	}
	if n := writes.Load(); n != 1 {
		t.Fatalf("%d writes while holding three frames, want only the one before", n)
	}
	if err := w.Flush(time.Second); err != nil {
		t.Fatal(err)
	}
	if n := writes.Load(); n != 2 {
		t.Fatalf("%d writes after the flush, want 2", n)
	}
	if err := w.Flush(time.Second); err != nil || writes.Load() != 2 {
		t.Fatalf("a flush with nothing held: %v, %d writes", err, writes.Load())
	}
	write("e") // holding ended with the flush
	if n := writes.Load(); n != 3 {
		t.Fatalf("%d writes, want 3", n)
	}
	// More than batchLimit: what is held goes out with the write that overflows it
	// (one writev on a TCP connection), in order.
	w.Hold()
	write("f")
	big := strings.Repeat("g", batchLimit)
	write(big)
	if w.buf != nil {
		t.Fatal("the overflowing write left something held")
	}
	write("h")
	if err := w.Flush(time.Second); err != nil {
		t.Fatal(err)
	}
	w.conn.Close()
	if want := "abcdef" + big + "h"; string(<-got) != want {
		t.Fatal("the peer did not get every byte in order")
	}
}

func TestBatchWriterFlushGivesUpOnAPeerThatDoesNotRead(t *testing.T) {
	w, _, _ := pipeWriter(t) // nobody reads the pipe
	w.Hold()
	if _, err := w.Write([]byte("frame")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := w.Flush(50 * time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("flush to a peer that does not read: %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("flush took %v", d)
	}
}

// A close frame written from another goroutine while the writer holds a batch
// follows the batch; nothing is lost or interleaved.
func TestBatchWriterOrdersConcurrentWriters(t *testing.T) {
	w, peer, _ := pipeWriter(t)
	got := readAll(peer)
	w.Hold()
	if _, err := w.Write([]byte("batch;")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := w.Write([]byte("close;")); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	if err := w.Flush(time.Second); err != nil {
		t.Fatal(err)
	}
	w.conn.Close()
	if b := <-got; string(b) != "batch;close;" {
		t.Fatalf("peer got %q", b)
	}
}

// With holdUpgrade, the 101 response waits for the socket's first frames and goes
// out with them in one write.
func TestUpgradeGoesOutWithTheFirstFrames(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: ln}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "r-1")
		w.Header()["Vary"] = []string{"Origin", "Accept"}
		w.Header().Set("X-Note", "a\r\nInjected: 1")
		lean := &leanHijacker{ResponseWriter: w, holdUpgrade: true}
		c, err := websocket.Accept(lean, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.CloseNow()
		before := counted.writes.Load()
		for _, f := range []string{`{"n":1}`, `{"n":2}`, `{"n":3}`} {
			if err := c.Write(r.Context(), websocket.MessageText, []byte(f)); err != nil {
				t.Error(err)
				return
			}
		}
		if n := counted.writes.Load() - before; n != 0 {
			t.Errorf("%d writes before the flush", n)
		}
		if err := lean.out.Flush(time.Second); err != nil {
			t.Error(err)
		}
		if n := counted.writes.Load() - before; n != 1 {
			t.Errorf("%d writes for the 101 and three frames, want 1", n)
		}
		_, _, _ = c.Read(context.Background()) // until the client closes
	}))
	srv.Listener = counted
	srv.Start()
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	client, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseNow()
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("X-Request-Id") != "r-1" ||
		strings.Join(res.Header.Values("Vary"), ",") != "Origin,Accept" || res.Header.Get("X-Note") != "a  Injected: 1" || res.Header.Get("Injected") != "" {
		t.Fatalf("upgrade answered %d with headers %v", res.StatusCode, res.Header)
	}
	for i := 1; i <= 3; i++ {
		_, b, err := client.Read(ctx)
		if err != nil || !bytes.Equal(b, []byte(`{"n":`+string(rune('0'+i))+`}`)) {
			t.Fatalf("frame %d: %q, %v", i, b, err)
		}
	}
	client.Close(websocket.StatusNormalClosure, "")
}
