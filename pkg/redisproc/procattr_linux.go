package redisproc

import "syscall"

// childProcAttr makes the kernel kill the redis-server when its parent dies without
// stopping it (a SIGKILL, a `go test -timeout` panic), so no redis-server outlives
// the process that started it. Its own process group keeps a Ctrl-C in the terminal
// from reaching it directly: the parent stops it after its own services, which may
// still write to it while they shut down.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
