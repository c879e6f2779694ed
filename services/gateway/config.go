package gateway

import (
	"errors"
	"time"

	"github.com/helmdesk/helmdesk/pkg/config"
)

// Config holds the gateway's settings.
type Config struct {
	UserTokenTTL     time.Duration
	CustomerTokenTTL time.Duration
}

// Declare registers the settings on s.
func (c *Config) Declare(s *config.Set) {
	s.Group("Gateway")
	s.Duration(&c.UserTokenTTL, "user-token-ttl", "HELMDESK_USER_TOKEN_TTL", 12*time.Hour, "Lifetime of a console sign-in token.")
	s.Duration(&c.CustomerTokenTTL, "customer-token-ttl", "HELMDESK_CUSTOMER_TOKEN_TTL", 7*24*time.Hour, "Lifetime of a customer's session token (lets the customer reconnect to the session).")
	s.Check(func() error {
		if c.UserTokenTTL < time.Minute || c.CustomerTokenTTL < time.Minute {
			return errors.New("token lifetimes must be at least 1m")
		}
		return nil
	})
}
