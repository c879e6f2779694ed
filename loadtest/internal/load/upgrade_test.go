package load

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/helmdesk/helmdesk/loadtest/internal/target"
	"github.com/helmdesk/helmdesk/pkg/client"
)

// acceptKey is the Sec-WebSocket-Accept a server answers key with (RFC 6455, 4.2.2).
func acceptKey(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// upgradeClient is the tool's API client for base, as Run sets it up.
func upgradeClient(base string) *client.Client {
	api := client.New(base)
	api.HTTP = &http.Client{
		Transport: &upgradeTransport{base: &http.Transport{DialContext: target.LoopbackDialer().DialContext}, dialer: target.LoopbackDialer()},
		Timeout:   5 * time.Second,
	}
	return api
}

func TestUpgradeTransportKeepsFramesThatCameWithTheResponse(t *testing.T) {
	seen := make(chan *http.Request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		// The 101 and two text frames in one write, as the gateway sends a greeting:
		// the frames arrive in the reader that parsed the response.
		out := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n" +
			"\x81\x0c{\"type\":\"a\"}" + "\x81\x0c{\"type\":\"b\"}"
		if _, err := conn.Write([]byte(out)); err != nil {
			t.Errorf("write: %v", err)
			return
		}
		// Then a frame that only the connection itself can deliver.
		time.Sleep(50 * time.Millisecond)
		_, _ = conn.Write([]byte("\x81\x0c{\"type\":\"c\"}"))
		time.Sleep(time.Second)
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sock, err := upgradeClient(srv.URL).DialCustomer(ctx, "tok-1", client.ResumeFrom(7))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer sock.CloseNow()
	r := <-seen
	if got := r.Header.Get("Authorization"); got != "Bearer tok-1" {
		t.Errorf("Authorization = %q", got)
	}
	if got := r.URL.Query().Get("last_seq"); got != "7" {
		t.Errorf("last_seq = %q", got)
	}
	for _, want := range []string{"a", "b", "c"} {
		f, err := sock.Read(ctx)
		if err != nil {
			t.Fatalf("read frame %s: %v", want, err)
		}
		if f.Type != want {
			t.Fatalf("frame type %q, want %q", f.Type, want)
		}
	}
}

func TestUpgradeTransportTalksToTheWebSocketLibrary(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/customer/ws" {
			http.Error(w, `{"code":"not_found","message":"no such route"}`, http.StatusNotFound)
			return
		}
		if r.Header.Get("Authorization") != "Bearer good" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"code":"invalid_token","message":"sign in again"}`))
			return
		}
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		ctx := context.Background()
		for {
			typ, b, err := conn.Read(ctx)
			if err != nil {
				return
			}
			if err := conn.Write(ctx, typ, b); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	api := upgradeClient(srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	sock, err := api.DialCustomer(ctx, "good")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	for i := range 3 {
		if err := sock.Send(ctx, map[string]any{"type": "typing", "n": i}); err != nil {
			t.Fatalf("send: %v", err)
		}
		f, err := sock.Read(ctx)
		if err != nil || f.Type != "typing" {
			t.Fatalf("echo %d: %+v, %v", i, f, err)
		}
	}
	if err := sock.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	// A refused handshake is an error with its status, as with net/http's transport.
	_, err = api.DialCustomer(ctx, "bad")
	if err == nil || classify(err) != "http_401" {
		t.Fatalf("dial with a bad token: %v (classified %s), want http 401", err, classify(err))
	}
	// Requests that are not handshakes go to the base transport.
	var out map[string]any
	err = api.Do(ctx, http.MethodGet, "/api/v1/elsewhere", nil, &out)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("REST call: %v, want the server's 404", err)
	}
}

func TestUpgradeTransportFailures(t *testing.T) {
	// Nothing listens: refused, at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := upgradeClient(closed).DialCustomer(ctx, "t"); classify(err) != "refused" {
		t.Fatalf("dial a closed port: %v (classified %s), want refused", err, classify(err))
	}

	// A server that accepts and never answers: the dial ends with its context.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	start := time.Now()
	_, err = upgradeClient("http://"+ln.Addr().String()).DialCustomer(short, "t")
	if classify(err) != "timeout" {
		t.Fatalf("dial a silent server: %v (classified %s), want timeout", err, classify(err))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("dial a silent server took %s, want about its 200ms context", d)
	}

	// A response that is not HTTP.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	go func() {
		c, err := ln2.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
	}()
	if _, err := upgradeClient("http://"+ln2.Addr().String()).DialCustomer(ctx, "t"); err == nil {
		t.Fatal("dial a server that does not speak HTTP: no error")
	}
}

// handshakeServer answers every WebSocket handshake on ln with a 101 and closes the
// connection once the client does: as little server work as a handshake allows, so
// that a benchmark measures the client.
func handshakeServer(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Accept: " + acceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n"))
			_, _ = io.Copy(io.Discard, c)
		}()
	}
}

// BenchmarkDial is a customer's reconnect as the tool makes it, through net/http's
// transport and through upgradeTransport: a handshake that succeeds, and one that
// finds nothing listening (as every client does while a killed process restarts).
func BenchmarkDial(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go handshakeServer(ln)
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	refused := "http://" + gone.Addr().String()
	gone.Close()

	plain := func(base string) *client.Client {
		api := client.New(base)
		api.HTTP = &http.Client{Transport: &http.Transport{DialContext: target.LoopbackDialer().DialContext}, Timeout: 5 * time.Second}
		return api
	}
	for _, c := range []struct {
		name string
		api  func(string) *client.Client
	}{{"transport=net/http", plain}, {"transport=upgrade", upgradeClient}} {
		b.Run(c.name+"/handshake", func(b *testing.B) {
			api := c.api("http://" + ln.Addr().String())
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				sock, err := api.DialCustomer(ctx, "token", client.ResumeFrom(42))
				if err != nil {
					b.Fatal(err)
				}
				_ = sock.CloseNow()
			}
		})
		b.Run(c.name+"/refused", func(b *testing.B) {
			api := c.api(refused)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := api.DialCustomer(ctx, "token", client.ResumeFrom(42)); err == nil {
					b.Fatal("dial to a closed port succeeded")
				}
			}
		})
	}
}
