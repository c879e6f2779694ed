// Package platformtest starts a whole Helmdesk platform on embedded dependencies
// for end-to-end tests, the way `helmdesk dev` does.
package platformtest

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/helmdesk/helmdesk/pkg/devstack"
	"github.com/helmdesk/helmdesk/services/platform"
)

// Dev is a whole platform on embedded dependencies, started the way `helmdesk dev`
// starts it, for end-to-end tests.
type Dev struct {
	URL string
	// MongoURI reaches the embedded MongoDB (for tests that inspect what is stored).
	MongoURI string
	// KafkaBrokers reaches the embedded Kafka (for tests that inspect its topics).
	KafkaBrokers []string
	stack        *devstack.Stack
	stop         context.CancelFunc
	done         chan error
}

// Start starts every service on an embedded stack keeping its data in dataDir;
// tweak may adjust the configuration. The platform stops at test cleanup or Stop.
func Start(t testing.TB, dataDir string, logOut io.Writer, tweak func(*platform.Config)) *Dev {
	t.Helper()
	ctx := context.Background()
	stack, err := devstack.Start(ctx, devstack.Options{DataDir: dataDir})
	if err != nil {
		t.Fatalf("start embedded dependencies: %v", err)
	}
	cfg, err := platform.DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.MongoURI, cfg.KafkaBrokers, cfg.RedisAddr = stack.MongoURI, stack.KafkaBrokers, stack.RedisAddr
	cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.LogLevel = "warn"
	if cfg.EncryptionKeysFile, cfg.AuditKeysFile, err = platform.EnsureDevKeys(dataDir); err != nil {
		t.Fatal(err)
	}
	cfg.ShutdownTimeout = 5 * time.Second
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := platform.New(ctx, cfg, nil, logOut, func(string) string { return "" })
	if err != nil {
		_ = stack.Close()
		t.Fatalf("start platform: %v", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	d := &Dev{URL: p.Scheme() + "://" + p.HTTPAddr(), MongoURI: stack.MongoURI, KafkaBrokers: stack.KafkaBrokers, stack: stack, stop: cancel, done: make(chan error, 1)}
	go func() { d.done <- p.Run(runCtx) }()
	t.Cleanup(func() { d.Stop(t) })
	return d
}

// Stop shuts the platform down and closes the embedded dependencies; it is safe to
// call more than once.
func (d *Dev) Stop(t testing.TB) {
	t.Helper()
	if d.stop == nil {
		return
	}
	d.stop()
	d.stop = nil
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("platform stopped with error: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("platform did not stop within 30s")
	}
	if err := d.stack.Close(); err != nil {
		t.Errorf("close embedded dependencies: %v", err)
	}
}
