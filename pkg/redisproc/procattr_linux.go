package redisproc

import "syscall"

// childProcAttr makes the kernel kill the redis-server when its parent
// dies without stopping it (a SIGKILL, a `go test -timeout` panic), so
// no redis-server outlives the process that started it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
