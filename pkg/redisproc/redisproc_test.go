package redisproc

import (
	"errors"
	"net"
	"testing"
	"time"
)

func TestStartPingStop(t *testing.T) {
	s, err := Start(t.TempDir(), "--save", "", "--appendonly", "no")
	if err != nil {
		t.Fatal(err)
	}
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("ping a started server: %v", err)
	}
	if err := s.Stop(10 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond); err == nil {
		_ = c.Close()
		t.Fatal("the server still accepts connections after Stop")
	}
	s.Kill() // after Stop: returns at once
}

func TestStartWithoutRedisServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := Start(t.TempDir()); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start without redis-server: err = %v, want ErrNotInstalled", err)
	}
}

func TestStartReportsBadArguments(t *testing.T) {
	_, err := Start(t.TempDir(), "--no-such-option", "x")
	if err == nil || errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start with a bad option: err = %v, want the server's complaint", err)
	}
}
