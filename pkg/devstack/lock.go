package devstack

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// DataDirInUseError is returned by [Start] when another process (or another
// Stack in this process) already runs on the same data directory.
type DataDirInUseError struct {
	Dir string
	// PID of the holder as written in the lock file, 0 if unknown.
	PID int
}

func (e *DataDirInUseError) Error() string {
	holder := "another process"
	if e.PID > 0 {
		holder = "process " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("data directory %s is already in use by %s (is another `helmdesk dev` running on it?)", e.Dir, holder)
}

// dirLock is an exclusive advisory lock on <dir>/.lock, held for the life of
// a Stack. The lock file holds the PID of the holder, for error messages. The
// file is left in place on release: deleting it would let a third process lock
// a new file while a second one still waits on the old one.
type dirLock struct {
	f *os.File
}

func readLockPID(f *os.File) int {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		return 0
	}
	return pid
}

// writePID records the current process as the holder.
func (l *dirLock) writePID() error {
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err := l.f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}
