package appmain_test

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the app's process die with the test binary, so that a
// test that fails half-way leaves no process behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
