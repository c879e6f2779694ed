package target

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://127.3.4.5", true},
		{"http://localhost:8080/", true},
		{"http://LOCALHOST", true},
		{"http://[::1]:8080", true},
		{"https://127.0.0.1", true},
		{"http://10.0.0.1:8080", false},
		{"http://0.0.0.0:8080", false},
		{"http://example.com", false},
		{"http://localhost.example.com", false},
		{"http://127.0.0.1.nip.io", false},
		{"http://[::ffff:10.0.0.1]", false},
		{"ws://127.0.0.1", false},
		{"127.0.0.1:8080", false},
		{"", false},
	}
	for _, tt := range tests {
		err := CheckLoopback(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("CheckLoopback(%q) = %v, want ok=%v", tt.url, err, tt.ok)
		}
	}
}

func TestLoopbackDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := LoopbackDialer()
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial loopback: %v", err)
	}
	c.Close()
	// A non-loopback address is refused before any packet is sent.
	if _, err := d.Dial("tcp", "192.0.2.1:80"); err == nil || !strings.Contains(err.Error(), "only connects to loopback") {
		t.Fatalf("dial 192.0.2.1: %v, want a refusal", err)
	}
}

func TestProcStats(t *testing.T) {
	pid := os.Getpid()
	deadline := time.Now().Add(2 * time.Second)
	for CPUOf(pid) < 20*time.Millisecond && time.Now().Before(deadline) {
		for i := 0; i < 1e6; i++ {
			_ = i * i
		}
	}
	if CPUOf(pid) <= 0 || RSSOf(pid) <= 0 {
		t.Fatalf("CPUOf = %v, RSSOf = %d for this process", CPUOf(pid), RSSOf(pid))
	}
	if CPUOf(1<<30) != 0 || RSSOf(1<<30) != 0 {
		t.Fatal("a missing process must read as 0")
	}
}
