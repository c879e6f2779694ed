package devstack

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/helmdesk/helmdesk/pkg/redisproc"
)

// Redis modes for [Options].Redis.
const (
	// RedisAuto runs redis-server when it is installed and miniredis otherwise.
	RedisAuto = "auto"
	// RedisServer runs redis-server and fails when it is not installed.
	RedisServer = "server"
	// RedisEmbedded runs miniredis in-process.
	RedisEmbedded = "embedded"
)

// redisStopTimeout bounds a redis-server's shutdown (it flushes its append-only file).
const redisStopTimeout = 10 * time.Second

// RedisProcess is a redis-server child process keeping its data in an append-only
// file (fsynced every second) in its folder.
//
// miniredis serves a few hundred sessions well, but its PUBLISH walks every channel
// of every subscriber under the lock all commands share, so with thousands of live
// conversations the fan-out stalls the whole stack; redis-server looks a channel up.
type RedisProcess struct {
	srv    *redisproc.Server
	logger *slog.Logger
}

// StartRedisServer starts redis-server with its data in dir (created if needed).
func StartRedisServer(dir string, logger *slog.Logger) (*RedisProcess, error) {
	logger = orDiscard(logger).With(slog.String("component", "redis-server"))
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve redis data dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("create redis data dir: %w", err)
	}
	srv, err := redisproc.Start(abs,
		"--appendonly", "yes",
		"--appendfsync", "everysec",
		"--save", "",
		"--protected-mode", "yes",
		"--loglevel", "warning",
	)
	if err != nil {
		return nil, err
	}
	logger.Debug("redis-server started", slog.String("addr", srv.Addr()), slog.String("dir", abs))
	return &RedisProcess{srv: srv, logger: logger}, nil
}

// Addr is the server's host:port.
func (r *RedisProcess) Addr() string { return r.srv.Addr() }

// Close shuts the server down, flushing its data.
func (r *RedisProcess) Close() error {
	if err := r.srv.Stop(redisStopTimeout); err != nil {
		return fmt.Errorf("%w\noutput:\n%s", err, r.srv.Output())
	}
	r.logger.Debug("redis-server stopped")
	return nil
}
