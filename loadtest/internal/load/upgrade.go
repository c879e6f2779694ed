package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// upgradeTransport sends WebSocket handshakes (plain ws://) on a connection of their
// own and hands every other request to base.
//
// http.Transport would do the same handshake with a pool's worth of machinery: a
// goroutine to dial, a read and a write goroutine per connection, 4 KiB buffers each
// way, all to be thrown away when the connection becomes a socket. The tool shares
// the host with the target it measures, and after a restart it opens thousands of
// sockets within a second or two; what it spends on each is taken from the restarted
// target. Here a handshake is a dial, one write and a read of the response.
type upgradeTransport struct {
	base   http.RoundTripper
	dialer *net.Dialer
}

// upgradeBuffer is the size of the buffers a handshake is written and read with. A
// request with a bearer token fits; the response comes with the server's first
// frames, which the socket then reads through the same buffer.
const upgradeBuffer = 1 << 10

// longAgo is a deadline in the past: it makes blocked reads and writes return.
var longAgo = time.Unix(1, 0)

func (t *upgradeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || req.Header.Get("Upgrade") != "websocket" {
		return t.base.RoundTrip(req)
	}
	if req.Body != nil {
		_ = req.Body.Close() // a handshake has none; the contract is to close it
	}
	ctx := req.Context()
	conn, err := t.dialer.DialContext(ctx, "tcp", canonicalAddr(req))
	if err != nil {
		return nil, err
	}
	// The request's context bounds the handshake; after it, the socket is the
	// caller's.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(longAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, err
	}
	bw := bufio.NewWriterSize(conn, upgradeBuffer)
	if err := req.Write(bw); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(conn, upgradeBuffer)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(err)
	}
	if !stop() {
		// The context ended as the response came: the deadline may be set.
		_ = conn.Close()
		return nil, ctx.Err()
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = &upgradedConn{br: br, Conn: conn}
	} else {
		resp.Body = &closingBody{ReadCloser: resp.Body, conn: conn}
	}
	return resp, nil
}

// canonicalAddr is the request's host:port, with the scheme's port when it has none.
func canonicalAddr(req *http.Request) string {
	if req.URL.Port() != "" {
		return req.URL.Host
	}
	return net.JoinHostPort(req.URL.Hostname(), "80")
}

// upgradedConn is an upgraded connection as a response body: reads drain what the
// handshake's reader buffered past the response, then go to the connection.
type upgradedConn struct {
	br *bufio.Reader
	net.Conn
}

func (c *upgradedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

// closingBody closes the connection with the body of a refused handshake.
type closingBody struct {
	io.ReadCloser
	conn net.Conn
}

func (b *closingBody) Close() error {
	return errors.Join(b.ReadCloser.Close(), b.conn.Close())
}
