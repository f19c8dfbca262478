//go:build !linux

package testdriver

import "os/exec"

// setProcAttr has no portable equivalent of a process group with a parent
// death signal; the driver kills its children itself on every way out.
func setProcAttr(*exec.Cmd) {}

// killGroup kills the child alone.
func killGroup(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
}
