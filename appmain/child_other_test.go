//go:build !linux

package appmain_test

import "os/exec"

// dieWithParent has no portable equivalent; the tests' cleanup kills the
// process instead.
func dieWithParent(*exec.Cmd) {}
