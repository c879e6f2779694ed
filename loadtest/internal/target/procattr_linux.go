package target

import "syscall"

// procAttr puts a child in its own process group (so the group can be killed whole)
// and has the kernel SIGKILL it if the load tester dies without cleaning up.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
