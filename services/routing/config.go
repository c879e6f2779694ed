package routing

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/helmdesk/helmdesk/pkg/config"
	"github.com/helmdesk/helmdesk/services/routing/internal/rules"
)

// Config holds the routing service's settings.
type Config struct {
	// RedisPrefix starts every Redis key of the service. Its hash tag keeps all keys in
	// one Redis Cluster slot, which the Lua scripts need.
	RedisPrefix string
	// PresenceGrace is how long an online agent may have no console socket before
	// becoming away.
	PresenceGrace time.Duration
	// ConnectionTTL is how long a console socket counts as open after its last
	// AgentConnected call (the gateway's heartbeat).
	ConnectionTTL time.Duration
	// QueueOverflowAfter moves a session that waited this long to QueueOverflowGroup's
	// queue; 0 disables overflow.
	QueueOverflowAfter time.Duration
	// QueueOverflowGroup is the fallback group of overflow ("" = every agent).
	QueueOverflowGroup string
	// TimeZone is the IANA time zone of the `hour` and `weekday` rule variables.
	TimeZone string
	// SweepInterval paces the background work: presence grace, overflow, queue drains
	// missed by a crashed replica, event redelivery and queue gauges.
	SweepInterval time.Duration
	// OutboxLease is how long a replica may take to publish a SessionRouted event
	// before another replica publishes it instead.
	OutboxLease time.Duration
}

// Declare declares the settings with their defaults and validation.
func (c *Config) Declare(s *config.Set) {
	s.Group("Routing service")
	s.String(&c.RedisPrefix, "routing-redis-prefix", "HELMDESK_ROUTING_REDIS_PREFIX", "helmdesk:{routing}:", "Prefix of the routing service's Redis keys; keep a {hash tag} in it so that all keys share one Redis Cluster slot.")
	s.Duration(&c.PresenceGrace, "routing-presence-grace", "HELMDESK_ROUTING_PRESENCE_GRACE", 30*time.Second, "How long an online agent may have no console socket open before becoming away.")
	s.Duration(&c.ConnectionTTL, "routing-connection-ttl", "HELMDESK_ROUTING_CONNECTION_TTL", 60*time.Second, "How long an agent's console socket counts as open after its last heartbeat (AgentConnected); gateways heartbeat every third of it.")
	s.Duration(&c.QueueOverflowAfter, "routing-queue-overflow-after", "HELMDESK_ROUTING_QUEUE_OVERFLOW_AFTER", 0, "Move a session that waited this long to the overflow group's queue; 0 disables overflow.")
	s.String(&c.QueueOverflowGroup, "routing-queue-overflow-group", "HELMDESK_ROUTING_QUEUE_OVERFLOW_GROUP", "", "Group whose queue takes overflowing sessions; empty means every agent.")
	s.String(&c.TimeZone, "routing-timezone", "HELMDESK_ROUTING_TIMEZONE", "UTC", "IANA time zone of the hour and weekday variables of routing rules, e.g. Asia/Shanghai.")
	s.Duration(&c.SweepInterval, "routing-sweep-interval", "HELMDESK_ROUTING_SWEEP_INTERVAL", time.Second, "Period of the routing background sweep: presence grace, queue overflow, missed drains, event redelivery, queue gauges.")
	s.Duration(&c.OutboxLease, "routing-outbox-lease", "HELMDESK_ROUTING_OUTBOX_LEASE", 15*time.Second, "Time a replica has to publish a session_routed event before another replica publishes it.")
	s.Check(c.validate)
}

func (c *Config) validate() error {
	var errs []error
	if c.RedisPrefix == "" {
		errs = append(errs, errors.New("--routing-redis-prefix must not be empty"))
	} else if i := strings.IndexByte(c.RedisPrefix, '{'); i < 0 || !strings.Contains(c.RedisPrefix[i+1:], "}") || strings.HasPrefix(c.RedisPrefix[i+1:], "}") {
		errs = append(errs, errors.New("--routing-redis-prefix must contain a non-empty {hash tag}"))
	}
	if c.PresenceGrace < 0 {
		errs = append(errs, errors.New("--routing-presence-grace must not be negative"))
	}
	if c.ConnectionTTL < time.Second {
		errs = append(errs, errors.New("--routing-connection-ttl must be at least 1s"))
	}
	if c.QueueOverflowAfter < 0 {
		errs = append(errs, errors.New("--routing-queue-overflow-after must not be negative"))
	}
	if c.QueueOverflowGroup != "" && !rules.ValidGroupName(c.QueueOverflowGroup) {
		errs = append(errs, fmt.Errorf("--routing-queue-overflow-group %q is not a group name (1-64 characters of a-z, 0-9, _ and -)", c.QueueOverflowGroup))
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil {
		errs = append(errs, fmt.Errorf("--routing-timezone: %w", err))
	}
	if c.SweepInterval < 10*time.Millisecond || c.SweepInterval > time.Minute {
		errs = append(errs, errors.New("--routing-sweep-interval must be between 10ms and 1m"))
	}
	if c.OutboxLease < time.Second {
		errs = append(errs, errors.New("--routing-outbox-lease must be at least 1s"))
	}
	return errors.Join(errs...)
}

// withDefaults fills the zero values that are not valid settings, for a Config built
// in code rather than by Declare (PresenceGrace 0 is valid: away at once).
func (c Config) withDefaults() Config {
	if c.RedisPrefix == "" {
		c.RedisPrefix = "helmdesk:{routing}:"
	}
	if c.ConnectionTTL == 0 {
		c.ConnectionTTL = 60 * time.Second
	}
	if c.TimeZone == "" {
		c.TimeZone = "UTC"
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = time.Second
	}
	if c.OutboxLease == 0 {
		c.OutboxLease = 15 * time.Second
	}
	return c
}
