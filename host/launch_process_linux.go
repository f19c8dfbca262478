package host

import (
	"os"
	"os/exec"
	"syscall"
	"unsafe"
)

// setProcAttr puts the app in a process group of its own, so that a signal
// to the group reaches whatever it started too, and makes the kernel kill it
// when the host dies, so that a crashed host leaves no app behind. (The
// parent death signal follows the thread that started the app; the Go
// runtime ends threads only in rare cases, which a host does not use.)
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the app's process group, whose id is the app's
// pid (Setpgid).
func signalGroup(p *os.Process, sig syscall.Signal) error {
	return syscall.Kill(-p.Pid, sig)
}

// waitExited blocks until the process pid has exited, without reaping it
// (waitid with WNOWAIT, as package os does before it reaps): until it is
// reaped its pid, and so its group's id, cannot be reused.
func waitExited(pid int) error {
	const pPID = 1      // P_PID: wait for the one process pid
	var info [16]uint64 // siginfo_t, 128 bytes; only the wait matters
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		switch errno {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		default:
			return errno
		}
	}
}
