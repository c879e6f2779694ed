package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// redisSnapshotInterval is how often a running Redis writes its snapshot.
const redisSnapshotInterval = 5 * time.Second

// Redis is an in-process miniredis on a loopback port that persists its data
// in a JSON snapshot file.
//
// miniredis has no persistence of its own. Redis restores the snapshot at
// start, writes it every two seconds while clients are sending commands, and
// writes it a last time on Close. A crash loses at most the last two seconds
// of writes, like Redis with a short RDB save interval.
type Redis struct {
	mr     *miniredis.Miniredis
	path   string
	logger *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}

	// saveMu serialises snapshot writes and guards the fields below.
	saveMu sync.Mutex
	// lastSaved is the content of the last snapshot written, to skip
	// rewriting an identical file.
	lastSaved []byte
	// warnedTypes holds the key types already reported as not persisted,
	// to warn once rather than on every save.
	warnedTypes map[string]bool

	closeOnce sync.Once
	closeErr  error
}

// StartRedis starts miniredis on a free port of 127.0.0.1, restoring the
// snapshot at snapshotPath if the file exists. Its directory is created if
// needed. Key TTLs run on the wall clock (advanced every expiryInterval), so keys
// expire as they would on a real Redis, including while the process is down.
// expiryInterval is how often key TTLs advance: keys expire at most this late.
const expiryInterval = 500 * time.Millisecond

func StartRedis(snapshotPath string, logger *slog.Logger) (*Redis, error) {
	return startRedis(snapshotPath, logger, redisSnapshotInterval)
}

func startRedis(snapshotPath string, logger *slog.Logger, interval time.Duration) (*Redis, error) {
	logger = orDiscard(logger).With(slog.String("component", "miniredis"))

	path, err := filepath.Abs(snapshotPath)
	if err != nil {
		return nil, fmt.Errorf("resolve redis snapshot path %s: %w", snapshotPath, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create redis snapshot dir: %w", err)
	}

	mr := miniredis.NewMiniRedis()
	// miniredis expires keys only on FastForward. Its ClockTTL mode would do so on
	// every command, sorting every key each time, which costs more than the command
	// itself once there are thousands of keys; saveLoop moves the clock forward
	// twice a second instead.

	r := &Redis{mr: mr, path: path, logger: logger, warnedTypes: map[string]bool{}}

	restored, err := r.restore()
	if err != nil {
		return nil, fmt.Errorf("restore redis snapshot %s (move it away to start empty): %w", path, err)
	}

	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start miniredis: %w", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done = make(chan struct{})
	go r.saveLoop(ctx, interval)

	logger.Debug("redis started", slog.String("addr", mr.Addr()), slog.String("snapshot", path), slog.Int("restored_keys", restored))
	return r, nil
}

// Addr returns the "127.0.0.1:PORT" address clients connect to.
func (r *Redis) Addr() string { return r.mr.Addr() }

// Close stops accepting connections, writes a final snapshot and shuts
// miniredis down. It is safe to call more than once.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() {
		r.cancel()
		<-r.done
		// Close the server before the last snapshot so no write lands after it.
		r.mr.Close()
		if err := r.save(); err != nil {
			r.closeErr = fmt.Errorf("write final redis snapshot: %w", err)
		}
		r.logger.Debug("redis stopped")
	})
	return r.closeErr
}

// saveLoop writes a snapshot every interval while commands are coming in.
//
// miniredis exposes no dirty flag, only a counter of commands received, which
// is incremented just before a command runs. A tick that sees the counter
// moved saves, and so does the tick after it, so that a command counted just
// before a snapshot but applied just after it is still written.
func (r *Redis) saveLoop(ctx context.Context, interval time.Duration) {
	defer close(r.done)

	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	expiry := time.NewTicker(expiryInterval)
	defer expiry.Stop()

	lastCount := r.mr.CommandCount()
	pending := false
	lastTick := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-expiry.C:
			r.mr.FastForward(now.Sub(lastTick))
			lastTick = now
			continue
		case <-ticker.C:
		}
		count := r.mr.CommandCount()
		changed := count != lastCount
		lastCount = count
		if !changed && !pending {
			continue
		}
		pending = changed
		if err := r.save(); err != nil {
			r.logger.Error("write redis snapshot", slog.String("path", r.path), slog.Any("error", err))
		}
	}
}

// save writes the current data set to r.path atomically, unless it is
// identical to the last snapshot written.
func (r *Redis) save() error {
	r.saveMu.Lock()
	defer r.saveMu.Unlock()

	snap, skipped := takeSnapshot(r.mr, time.Now())
	for _, s := range skipped {
		if r.warnedTypes[s.kind] {
			continue
		}
		r.warnedTypes[s.kind] = true
		r.logger.Warn("redis key not persisted",
			slog.Int("db", s.db), slog.String("key", s.key), slog.String("type", s.kind), slog.Any("error", s.err))
	}
	data, err := snap.encode()
	if err != nil {
		return fmt.Errorf("encode snapshot: %w", err)
	}
	if r.lastSaved != nil && bytes.Equal(data, r.lastSaved) {
		return nil
	}
	if err := writeFileAtomic(r.path, data); err != nil {
		return err
	}
	r.lastSaved = data
	return nil
}

// restore loads r.path into miniredis and returns the number of keys loaded.
// A missing file is an empty data set.
func (r *Redis) restore() (int, error) {
	data, err := os.ReadFile(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read snapshot: %w", err)
	}
	snap, err := decodeSnapshot(data)
	if err != nil {
		return 0, err
	}
	n, err := snap.apply(r.mr, time.Now())
	if err != nil {
		return n, err
	}
	r.lastSaved = data
	return n, nil
}

// writeFileAtomic replaces path with data so that readers see either the old
// or the new content, never a partial file.
func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	tmp, err := os.CreateTemp(dir, base+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp.Name(), path, err)
	}
	return nil
}
