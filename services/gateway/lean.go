package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Buffer sizes of a socket's connection. Chat frames are a few hundred bytes; larger
// ones are read and written in a few more system calls. The HTTP server's own buffers
// (4 KiB each way) would otherwise stay with every socket for its whole life.
const (
	socketReadBuffer  = 1 << 10
	socketWriteBuffer = 1 << 10
)

// leanHijacker hands the WebSocket library smaller buffers than the HTTP server's,
// and makes its writes go through a batchWriter (out, set by Hijack).
//
// With holdUpgrade, the 101 response is not written when the library sends it but
// held in out, to go out with the socket's first frames in one write: the socket
// must then flush out (see itemFlush) whatever becomes of it.
type leanHijacker struct {
	http.ResponseWriter
	holdUpgrade bool
	upgrade     bool // a 101 was held back
	out         *batchWriter
}

func (w *leanHijacker) WriteHeader(code int) {
	if code == http.StatusSwitchingProtocols && w.holdUpgrade {
		w.upgrade = true
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *leanHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	w.out = &batchWriter{conn: conn}
	if w.upgrade {
		w.out.Hold()
		writeUpgrade(w.out, w.Header())
	}
	bw := bufio.NewWriterSize(w.out, socketWriteBuffer)
	n := brw.Reader.Buffered()
	if n > socketReadBuffer {
		// The client sent ahead more than fits: keep the server's reader.
		return conn, bufio.NewReadWriter(brw.Reader, bw), nil
	}
	// Bytes the client sent right after its request (a first frame) are read first.
	pending, _ := brw.Reader.Peek(n)
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(pending)), conn), socketReadBuffer)
	if n > 0 {
		if _, err := br.Peek(n); err != nil {
			_ = conn.Close()
			return nil, nil, err
		}
	}
	return conn, bufio.NewReadWriter(br, bw), nil
}

// batchWriter is a socket's connection as its frames are written to it. Between
// Hold and Flush it keeps what is written and sends it in one write: the frames a
// socket's writer finds queued together (an agent's greeting has a frame per
// session, a resume one per message replayed) then cost one system call, and the
// client one read, rather than one each. After a restart, when every client
// reconnects at once, those calls are a good part of the gateway's work.
type batchWriter struct {
	conn net.Conn
	mu   sync.Mutex
	hold bool
	buf  *[]byte // what is held, from batchBufs; nil when nothing is
}

// batchLimit is the most a batchWriter holds; a write that would take it past that
// goes out at once, with what was held.
const batchLimit = 32 << 10

var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// Write writes p, or keeps it while holding. Writes come from the WebSocket library,
// one frame at a time (its own lock orders them); a close frame may come from
// another goroutine than the socket's writer, hence the mutex.
func (w *batchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	held := 0
	if w.buf != nil {
		held = len(*w.buf)
	}
	switch {
	case w.hold && held+len(p) <= batchLimit:
		if w.buf == nil {
			w.buf = batchBufs.Get().(*[]byte)
		}
		*w.buf = append(*w.buf, p...)
		return len(p), nil
	case held == 0:
		return w.conn.Write(p)
	}
	// Too much to hold: what is held and p go out together (one writev), p uncopied.
	out := net.Buffers{*w.buf, p}
	_, err := out.WriteTo(w.conn)
	w.drop()
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// Hold keeps what is written from now on, until Flush.
func (w *batchWriter) Hold() {
	w.mu.Lock()
	w.hold = true
	w.mu.Unlock()
}

// Flush ends holding and writes what was held, failing if that takes longer than
// timeout (a client that does not read).
func (w *batchWriter) Flush(timeout time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hold = false
	if w.buf == nil {
		return nil
	}
	if err := w.conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		w.drop()
		return err
	}
	_, err := w.conn.Write(*w.buf)
	w.drop()
	if err == nil {
		err = w.conn.SetWriteDeadline(time.Time{})
	}
	return err
}

// drop forgets what is held. w.mu is held.
func (w *batchWriter) drop() {
	*w.buf = (*w.buf)[:0]
	batchBufs.Put(w.buf)
	w.buf = nil
}

// writeUpgrade writes the held 101 response. Unlike http.Header.Write it does not
// sort the fields (their order means nothing to a client): in a profile of a
// restarted gateway's reconnect storm, Header.Write was 8% of the gateway's CPU,
// most of it growing the stack for the sort. Line breaks in a value become
// spaces, as net/http makes them.
func writeUpgrade(out io.Writer, h http.Header) {
	b := make([]byte, 0, 256)
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\n"...)
	for k, vs := range h {
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			for i := 0; i < len(v); i++ {
				c := v[i]
				if c == '\r' || c == '\n' {
					c = ' '
				}
				b = append(b, c)
			}
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "\r\n"...)
	_, _ = out.Write(b)
}
