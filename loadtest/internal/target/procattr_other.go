//go:build unix && !linux

package target

import "syscall"

// procAttr puts a child in its own process group, so the group can be killed whole.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
