//go:build unix

package devstack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lockDir takes the lock on dir/.lock without waiting. flock locks belong to
// the open file, so a second lock in the same process fails too.
func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		pid := readLockPID(f)
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &DataDirInUseError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	l := &dirLock{f: f}
	if err := l.writePID(); err != nil {
		_ = l.release()
		return nil, fmt.Errorf("write lock file %s: %w", path, err)
	}
	return l, nil
}

func (l *dirLock) release() error {
	// Closing the file releases the flock.
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("release lock file: %w", err)
	}
	return nil
}
