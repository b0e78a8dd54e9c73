//go:build !linux

package testenv

import "syscall"

// sysProcAttr starts a server in a process group of its own. Only Linux
// kills it with the test binary (proc_linux.go): elsewhere a killed test
// run can leave servers behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
