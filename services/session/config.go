package session

import (
	"errors"
	"time"

	"github.com/helmdesk/helmdesk/pkg/config"
)

// Config holds the session service's settings.
type Config struct {
	ConsumerGroup string
	StateTTL      time.Duration
	RecentSize    int
	IdleTimeout   time.Duration
}

// Declare registers the settings on s.
func (c *Config) Declare(s *config.Set) {
	s.Group("Session service")
	s.String(&c.ConsumerGroup, "session-consumer-group", "HELMDESK_SESSION_CONSUMER_GROUP", "session", "Kafka consumer group of the session service's inbound consumers.")
	s.Duration(&c.StateTTL, "session-state-ttl", "HELMDESK_SESSION_STATE_TTL", 24*time.Hour, "How long an idle session's hot state (seq, recent ids) stays in Redis; it is reloaded from MongoDB after that.")
	s.Int(&c.RecentSize, "session-recent-size", "HELMDESK_SESSION_RECENT_SIZE", 64, "Messages per session kept in Redis for fast resume and gap repair; older ones are read from MongoDB.")
	s.Duration(&c.IdleTimeout, "session-idle-timeout", "HELMDESK_SESSION_IDLE_TIMEOUT", 30*time.Minute, "Close a session after this long without a message; 0 never closes idle sessions.")
	s.Check(func() error {
		switch {
		case c.ConsumerGroup == "":
			return errors.New("--session-consumer-group must not be empty")
		case c.StateTTL < time.Minute:
			return errors.New("--session-state-ttl must be at least 1m")
		case c.IdleTimeout < 0:
			return errors.New("--session-idle-timeout must not be negative")
		case c.RecentSize < 10 || c.RecentSize > 10000:
			return errors.New("--session-recent-size must be between 10 and 10000")
		}
		return nil
	})
}
