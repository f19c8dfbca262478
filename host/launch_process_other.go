//go:build !linux

package host

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// setProcAttr does nothing here: there is no portable process group with a
// parent death signal. Stop and Kill reach the app alone.
func setProcAttr(*exec.Cmd) {}

// signalGroup sends sig to the app alone; SIGKILL kills it the portable
// way.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		return p.Kill()
	}
	return p.Signal(sig)
}

// openLog opens the app's log (see openAppLog).
func openLog(path string) (*os.File, error) { return openAppLog(path) }

// stdoutPipe returns the pipe for the app's stdout.
func stdoutPipe() (r, w *os.File, err error) { return os.Pipe() }

// waitExited cannot wait without reaping here; the instance reaps the app
// without it.
func waitExited(int) error { return errors.ErrUnsupported }
