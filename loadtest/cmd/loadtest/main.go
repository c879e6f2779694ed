// Command loadtest simulates customers and agents chatting over Helmdesk's real HTTP
// and WebSocket protocols, measures throughput and latency, and checks that no
// acknowledged message is lost, duplicated or reordered — optionally while killing
// and restarting the platform's processes.
//
// Against a running target (loopback only):
//
//	loadtest -target http://127.0.0.1:8080 -customers 500 -agents 50 -rate 2 -duration 60s
//
// Starting the target itself, with chaos:
//
//	loadtest -layout split -helmdesk-bin bin/helmdesk -customers 100 -agents 5 \
//	    -chaos session,gateway -chaos-cycles 2 -chaos-interval 8s -duration 40s
//
// The summary goes to stdout (stderr when -json -), a progress line every second to
// stderr. Exit status: 0 when the run passed, 1 when it failed (a lost, duplicated
// or reordered message, a gap, a socket that never resumed, too many errors, nothing
// delivered), 2 when it could not run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/helmdesk/helmdesk/loadtest/internal/load"
	"github.com/helmdesk/helmdesk/loadtest/internal/target"
)

func main() {
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg load.Config
	var layout, chaos, jsonPath string
	var quiet bool
	fs.StringVar(&cfg.Target, "target", "http://127.0.0.1:8080", "base URL of a running Helmdesk (loopback addresses only); ignored with -layout")
	fs.StringVar(&layout, "layout", "", "start the target from -helmdesk-bin: dev (one `helmdesk dev` process) or split (devstack + session/routing + gateway processes)")
	fs.StringVar(&cfg.Binary, "helmdesk-bin", "bin/helmdesk", "helmdesk binary for -layout (make build)")
	fs.StringVar(&cfg.Dir, "dir", "", "folder for the started target's data and logs (default: a new temporary folder)")
	fs.StringVar(&cfg.Setup, "setup", "auto", "first-run setup: auto (when the target is fresh, else sign in), always, never")
	fs.StringVar(&cfg.Organization, "org", "Loadtest", "organisation name for first-run setup")
	fs.StringVar(&cfg.AdminEmail, "admin-email", "admin@loadtest.example", "admin email (created by setup, or used to sign in)")
	fs.StringVar(&cfg.AdminPassword, "admin-password", "loadtest-admin-pw", "admin password")
	fs.IntVar(&cfg.Customers, "customers", 100, "customer sessions (one socket each)")
	fs.IntVar(&cfg.Agents, "agents", 10, "agents (one socket each; max_sessions = ceil(customers/agents), at most 100)")
	fs.Float64Var(&cfg.Rate, "rate", 1, "messages per second per customer")
	fs.Float64Var(&cfg.Jitter, "jitter", 0.5, "each send interval is 1/rate × (1 ± jitter)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long to send once every customer had its turn to connect (default 30s)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "sending time after the ramp, before the steady state is measured (lets the target work off the ramp)")
	fs.IntVar(&cfg.Messages, "messages", 0, "stop after this many customer messages (0: -duration only)")
	fs.Float64Var(&cfg.RampRate, "ramp", load.DefaultRampRate, "customer sessions started per second")
	fs.DurationVar(&cfg.RampTimeout, "ramp-timeout", 0, "give up on customers still without a session after this long (default 5m)")
	fs.IntVar(&cfg.TextBytes, "text-bytes", 64, "message text size in bytes")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", 0, "after sending stops, how long to wait for in-flight deliveries (default 30s)")
	fs.DurationVar(&cfg.AckTimeout, "ack-timeout", 0, "resend a message (same client_msg_id) when its ack is this late (default 10s)")
	fs.IntVar(&cfg.Senders, "senders", 8, "goroutines writing frames")
	fs.IntVar(&cfg.HistoryCheck, "history-check", 200, "conversations to cross-check against the REST history, spread evenly (-1: all, 0: none)")
	fs.DurationVar(&cfg.HistoryTimeout, "history-timeout", 0, "time limit of the REST cross-check (default 2m)")
	fs.StringVar(&chaos, "chaos", "", "processes to SIGKILL and restart while the load runs: session, gateway (split layout), dev (dev layout); comma-separated")
	fs.DurationVar(&cfg.ChaosInterval, "chaos-interval", 0, "time between kills (default 10s)")
	fs.IntVar(&cfg.ChaosCycles, "chaos-cycles", 1, "kills of each -chaos process (in the order given)")
	fs.DurationVar(&cfg.ChaosDown, "chaos-down", 0, "how long a killed process stays down (default 500ms)")
	fs.Float64Var(&cfg.MaxErrorRate, "max-error-rate", 0.01, "fail when HTTP and error-frame errors exceed this share of operations")
	fs.IntVar(&cfg.TargetPID, "target-pid", 0, "pid of an external target, to report its memory")
	fs.StringVar(&jsonPath, "json", "", "also write the report as JSON to this file (- for stdout; the summary then goes to stderr)")
	fs.BoolVar(&quiet, "quiet", false, "no progress line")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest: unexpected arguments %v\n", fs.Args())
		return 2
	}
	cfg.Layout = target.Layout(layout)
	if chaos != "" {
		for c := range strings.SplitSeq(chaos, ",") {
			if c = strings.TrimSpace(c); c != "" {
				cfg.Chaos = append(cfg.Chaos, c)
			}
		}
	}
	cfg.Log = stderr
	if !quiet {
		cfg.Progress = stderr
	}

	text := stdout
	var jsonOut io.Writer
	switch jsonPath {
	case "":
	case "-":
		text, jsonOut = stderr, stdout
	default:
		f, err := os.Create(jsonPath)
		if err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			return 2
		}
		defer f.Close()
		jsonOut = f
	}

	rep, err := load.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 2
	}
	if err := load.WriteReport(rep, text, jsonOut); err != nil {
		fmt.Fprintf(stderr, "loadtest: write report: %v\n", err)
		return 2
	}
	if !rep.Pass {
		return 1
	}
	return 0
}
