//go:build !unix

package devstack

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir only records the PID on systems without flock: two stacks on the
// same directory are not detected there.
func lockDir(dir string) (*dirLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	l := &dirLock{f: f}
	if err := l.writePID(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("write lock file: %w", err)
	}
	return l, nil
}

func (l *dirLock) release() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("release lock file: %w", err)
	}
	return nil
}
