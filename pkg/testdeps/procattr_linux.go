package testdeps

import "syscall"

// childProcAttr makes the kernel kill child servers when the test binary
// dies without running cleanups (a `go test -timeout` panic, a SIGKILL), so
// no redis-server outlives its test run.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
