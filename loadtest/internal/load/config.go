package load

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/helmdesk/helmdesk/loadtest/internal/target"
)

// Config is one load test. Zero fields take the defaults of [Config.Complete].
type Config struct {
	// Target is the base URL of a running Helmdesk (loopback only). Ignored when
	// Layout is set: the tool then starts the target itself from Binary.
	Target string
	Layout target.Layout // "", dev or split
	Binary string        // helmdesk binary for Layout (default bin/helmdesk)
	Dir    string        // data and logs of a started target (default: a temp folder)

	// Setup: "auto" (first-run setup when the target is fresh, else sign in),
	// "always" or "never" (sign in only).
	Setup         string
	Organization  string
	AdminEmail    string
	AdminPassword string

	Customers int
	Agents    int
	Rate      float64       // messages per second per customer
	Jitter    float64       // 0..1: each interval is 1/Rate × (1 ± Jitter)
	Duration  time.Duration // sending time once every customer had its turn to connect
	// Warmup is sending time after the ramp that the steady-state figures leave out.
	Warmup   time.Duration
	Messages int     // stop after this many customer messages (0: Duration only)
	RampRate float64 // customer sessions started per second
	// RampTimeout bounds the ramp: customers without a session by then are
	// abandoned (default 5m).
	RampTimeout time.Duration
	TextBytes   int // message text size

	DrainTimeout time.Duration // after sending stops, how long to wait for deliveries
	AckTimeout   time.Duration // resend (same client_msg_id) when no ack came in this time
	Senders      int           // goroutines writing frames (the shared send scheduler's workers)

	// HistoryCheck is how many conversations to cross-check against the REST history
	// (-1: all, 0: none); HistoryTimeout bounds the cross-check (default 2m).
	HistoryCheck   int
	HistoryTimeout time.Duration

	Chaos         []string      // processes to kill: session, gateway (split) or dev
	ChaosInterval time.Duration // time between kills
	ChaosCycles   int           // kills per process
	ChaosDown     time.Duration // how long a killed process stays down

	MaxErrorRate float64 // counted errors / operations above which the run fails

	// TargetPID, when not 0, is a process whose memory to report (an external target).
	TargetPID int

	Progress io.Writer // one line per second while running (nil: none)
	Log      io.Writer // status lines (nil: none)
}

// Defaults.
const (
	DefaultRampRate = 200
	maxAgentSession = 100 // the API's upper bound of max_sessions
)

// Complete applies defaults and validates the configuration.
func (c *Config) Complete() error {
	if c.Setup == "" {
		c.Setup = "auto"
	}
	if c.Organization == "" {
		c.Organization = "Loadtest"
	}
	if c.AdminEmail == "" {
		c.AdminEmail = "admin@loadtest.example"
	}
	if c.AdminPassword == "" {
		c.AdminPassword = "loadtest-admin-pw"
	}
	if c.Binary == "" {
		c.Binary = "bin/helmdesk"
	}
	if c.Customers == 0 {
		c.Customers = 100
	}
	if c.Agents == 0 {
		c.Agents = 10
	}
	if c.Rate == 0 {
		c.Rate = 1
	}
	if c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	if c.RampRate == 0 {
		c.RampRate = DefaultRampRate
	}
	if c.RampTimeout == 0 {
		c.RampTimeout = 5 * time.Minute
	}
	if c.TextBytes == 0 {
		c.TextBytes = 64
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 10 * time.Second
	}
	if c.HistoryTimeout == 0 {
		c.HistoryTimeout = 2 * time.Minute
	}
	if c.Senders == 0 {
		c.Senders = 8
	}
	if c.ChaosInterval == 0 {
		c.ChaosInterval = 10 * time.Second
	}
	if c.ChaosCycles == 0 {
		c.ChaosCycles = 1
	}
	if c.ChaosDown == 0 {
		c.ChaosDown = 500 * time.Millisecond
	}
	var errs []error
	switch c.Setup {
	case "auto", "always", "never":
	default:
		errs = append(errs, fmt.Errorf("-setup must be auto, always or never, not %q", c.Setup))
	}
	switch c.Layout {
	case "":
		if c.Target == "" {
			errs = append(errs, errors.New("give -target (a running Helmdesk) or -layout dev|split (start one)"))
		} else if err := target.CheckLoopback(c.Target); err != nil {
			errs = append(errs, err)
		}
		if len(c.Chaos) > 0 {
			errs = append(errs, errors.New("-chaos needs -layout: the tool can only kill processes it started"))
		}
	case target.Dev, target.Split:
		for _, p := range c.Chaos {
			if !slices.Contains(target.Killable(c.Layout), p) {
				errs = append(errs, fmt.Errorf("-chaos %s: the %s layout has %v to kill", p, c.Layout, target.Killable(c.Layout)))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("-layout must be dev or split, not %q", c.Layout))
	}
	if c.Customers < 1 || c.Agents < 1 {
		errs = append(errs, errors.New("-customers and -agents must be at least 1"))
	}
	if c.Customers > c.Agents*maxAgentSession {
		errs = append(errs, fmt.Errorf("%d customers need at least %d agents (an agent takes at most %d sessions)", c.Customers, (c.Customers+maxAgentSession-1)/maxAgentSession, maxAgentSession))
	}
	if c.Rate < 0 || c.Jitter < 0 || c.Jitter > 1 {
		errs = append(errs, errors.New("-rate must be positive and -jitter between 0 and 1"))
	}
	if c.Duration < 0 || c.Warmup < 0 || c.Messages < 0 || c.RampRate < 0 || c.DrainTimeout < 0 || c.RampTimeout < 0 {
		errs = append(errs, errors.New("-duration, -messages, -ramp, -ramp-timeout and -drain-timeout must not be negative"))
	}
	if c.Duration > 24*time.Hour {
		errs = append(errs, errors.New("-duration must be at most 24h: every run stops by itself"))
	}
	if c.TextBytes < 16 || c.TextBytes > 16<<10 {
		errs = append(errs, errors.New("-text-bytes must be between 16 and 16384"))
	}
	if c.ChaosCycles < 0 || c.ChaosInterval < 0 || c.ChaosDown < 0 {
		errs = append(errs, errors.New("chaos settings must not be negative"))
	}
	if c.MaxErrorRate < 0 {
		errs = append(errs, errors.New("-max-error-rate must not be negative"))
	}
	return errors.Join(errs...)
}

// agentCapacity is max_sessions for every agent: enough for every customer.
func (c *Config) agentCapacity() int {
	return min(maxAgentSession, max(1, (c.Customers+c.Agents-1)/c.Agents))
}
