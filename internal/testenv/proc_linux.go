package testenv

import "syscall"

// sysProcAttr starts a server in a process group of its own, killed with
// the test binary (Pdeathsig): a killed test run does not leave servers
// behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
