package gateway

import (
	"errors"
	"time"

	"github.com/helmdesk/helmdesk/pkg/config"
)

// Config holds the gateway's settings.
type Config struct {
	UserTokenTTL          time.Duration
	UserIdleTimeout       time.Duration
	CustomerTokenTTL      time.Duration
	LoginMaxFailures      int
	LoginMaxFailuresPerIP int
	LoginLockout          time.Duration
	// SocketSetups is how many sockets may be opening at once (see openSocket).
	SocketSetups int
	// SocketSetupWait is how long a socket request waits for a setup slot before it
	// is refused with 503 busy.
	SocketSetupWait time.Duration
}

// Declare registers the settings on s.
func (c *Config) Declare(s *config.Set) {
	s.Group("Gateway")
	s.Duration(&c.UserTokenTTL, "user-token-ttl", "HELMDESK_USER_TOKEN_TTL", 12*time.Hour, "Absolute lifetime of a console sign-in: after it the user signs in again however active they were.")
	s.Duration(&c.UserIdleTimeout, "user-idle-timeout", "HELMDESK_USER_IDLE_TIMEOUT", 30*time.Minute, "A sign-in unused for this long ends (0 disables the idle timeout).")
	s.Int(&c.LoginMaxFailures, "login-max-failures", "HELMDESK_LOGIN_MAX_FAILURES", 5, "Failed sign-ins to one account within the lockout period that lock it.")
	s.Int(&c.LoginMaxFailuresPerIP, "login-max-failures-per-ip", "HELMDESK_LOGIN_MAX_FAILURES_PER_IP", 50, "Failed sign-ins from one address within the lockout period after which it is refused.")
	s.Duration(&c.LoginLockout, "login-lockout", "HELMDESK_LOGIN_LOCKOUT", 15*time.Minute, "How long a locked account stays locked, and the window failures are counted in.")
	s.Duration(&c.CustomerTokenTTL, "customer-token-ttl", "HELMDESK_CUSTOMER_TOKEN_TTL", 7*24*time.Hour, "Lifetime of a customer's session token (lets the customer reconnect to the session).")
	s.Int(&c.SocketSetups, "socket-setups", "HELMDESK_SOCKET_SETUPS", 64, "WebSockets opening at once (authentication to greeting); more wait their turn, first come first served, so that after a restart the first clients back are served first.")
	s.Duration(&c.SocketSetupWait, "socket-setup-wait", "HELMDESK_SOCKET_SETUP_WAIT", 15*time.Second, "How long a WebSocket request waits for its turn to open before it is refused (503 busy; clients retry).")
	s.Check(func() error {
		if c.SocketSetups < 1 || c.SocketSetupWait < time.Second {
			return errors.New("--socket-setups must be at least 1 and --socket-setup-wait at least 1s")
		}
		if c.UserTokenTTL < time.Minute || c.CustomerTokenTTL < time.Minute {
			return errors.New("token lifetimes must be at least 1m")
		}
		if c.UserIdleTimeout != 0 && c.UserIdleTimeout < time.Minute {
			return errors.New("--user-idle-timeout must be 0 (off) or at least 1m")
		}
		if c.LoginLockout < time.Second || c.LoginMaxFailures < 1 || c.LoginMaxFailuresPerIP < 1 {
			return errors.New("login limits (--login-max-failures, --login-max-failures-per-ip, --login-lockout) must be positive")
		}
		return nil
	})
}
