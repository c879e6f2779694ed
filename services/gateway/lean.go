package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Buffer sizes of a socket's connection. Chat frames are a few hundred bytes; larger
// ones are read and written in a few more system calls. The HTTP server's own buffers
// (4 KiB each way) would otherwise stay with every socket for its whole life.
const (
	socketReadBuffer  = 1 << 10
	socketWriteBuffer = 1 << 10
)

// leanHijacker hands the WebSocket library smaller buffers than the HTTP server's.
type leanHijacker struct{ http.ResponseWriter }

func (w leanHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	n := brw.Reader.Buffered()
	if n > socketReadBuffer {
		return conn, brw, nil // the client sent ahead more than fits: keep the server's
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
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, socketWriteBuffer)), nil
}
