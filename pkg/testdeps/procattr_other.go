//go:build !linux

package testdeps

import "syscall"

// childProcAttr has nothing to add outside Linux: a child server may outlive
// a test binary that dies without running cleanups.
func childProcAttr() *syscall.SysProcAttr { return nil }
