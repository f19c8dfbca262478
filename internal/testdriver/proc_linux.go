package testdriver

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in a process group of its own, so that a kill
// reaches whatever it started too, and makes the kernel kill it when the
// driver's process dies, so that a test that crashes leaves no app behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills the child's process group with SIGKILL: no grace, as a
// crash would.
func killGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
