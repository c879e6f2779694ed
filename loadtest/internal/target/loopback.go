package target

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// CheckLoopback returns an error unless raw is an http(s) URL whose host is
// localhost or a loopback IP address (127.0.0.0/8, ::1).
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("target %q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("target %q must be an http:// or https:// URL", raw)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing target %q: the load tester only targets loopback addresses (127.0.0.0/8, ::1, localhost)", raw)
}

// LoopbackDialer returns a dialer that refuses to connect anywhere but a loopback
// address, whatever name resolution or a redirect produced: the last line of the
// tool's safety.
func LoopbackDialer() *net.Dialer {
	return &net.Dialer{
		Timeout:   5 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("refusing to connect to %s: the load tester only connects to loopback addresses", address)
			}
			return nil
		},
	}
}
