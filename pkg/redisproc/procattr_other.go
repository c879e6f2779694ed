//go:build !linux

package redisproc

import "syscall"

// childProcAttr has nothing to add outside Linux: a child server may outlive
// a parent that dies without stopping it.
func childProcAttr() *syscall.SysProcAttr { return nil }
