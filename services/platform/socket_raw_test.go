package platform_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/client"
	"github.com/helmdesk/helmdesk/services/platform/platformtest"
)

// maskedText is a client text frame (masked with a zero key, which RFC 6455 allows).
func maskedText(payload string) []byte {
	var b []byte
	switch n := len(payload); {
	case n < 126:
		b = []byte{0x81, 0x80 | byte(n)}
	case n <= 0xffff:
		b = []byte{0x81, 0x80 | 126, 0, 0}
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		panic("frame too large for this helper")
	}
	return append(append(b, 0, 0, 0, 0), payload...)
}

// readServerFrame reads one unmasked, unfragmented server frame.
func readServerFrame(t *testing.T, br *bufio.Reader) []byte {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	if h[0] != 0x81 {
		t.Fatalf("frame byte 0 = %#x, want a final text frame", h[0])
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint64(ext[:]))
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		t.Fatalf("read frame payload: %v", err)
	}
	return b
}

// A client may send its first frames in the same packet as the upgrade request, and
// frames larger than the socket's small read buffer; none of it is lost.
func TestSocketFramesSentWithTheUpgrade(t *testing.T) {
	ctx := context.Background()
	dev := platformtest.Start(t, t.TempDir(), io.Discard, nil)
	api := client.New(dev.URL)
	if _, err := api.Setup(ctx, "Acme", adminEmail, adminPass, "Ada"); err != nil {
		t.Fatal(err)
	}
	tok, err := api.Login(ctx, adminEmail, adminPass)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(dev.URL, "http://")
	big := `{"type":"bogus3","pad":"` + strings.Repeat("x", 6000) + `"}`
	for _, tc := range []struct {
		name   string
		frames []string
	}{
		// What arrives with the request is carried over into the socket's buffer.
		{"a small frame", []string{`{"type":"bogus1"}`, `{"type":"bogus2"}`}},
		// More than that buffer holds: the server's buffer is kept.
		{"a large frame", []string{`{"type":"bogus1"}`, `{"type":"bogus2"}`, big}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			packet := []byte(fmt.Sprintf("GET /api/v1/agent/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n", addr, tok))
			for _, f := range tc.frames {
				packet = append(packet, maskedText(f)...)
			}
			if _, err := c.Write(packet); err != nil { // one write: request and frames
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %v %v", resp, err)
			}
			for i := range tc.frames {
				want := fmt.Sprintf("bogus%d", i+1)
				var f struct{ Type, Code, Message string }
				if err := json.Unmarshal(readServerFrame(t, br), &f); err != nil {
					t.Fatal(err)
				}
				if f.Type != "error" || f.Code != "unknown_type" || !strings.Contains(f.Message, want) {
					t.Fatalf("got %+v, want unknown_type for %s", f, want)
				}
			}
		})
	}
}
