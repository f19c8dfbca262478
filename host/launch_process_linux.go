package host

import (
	"fmt"
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
// reaped its pid, and so its group's id, cannot be reused. With a pidfd
// (Linux 5.4 and later) the wait holds no thread (see pidfdWaitExited);
// without one a thread blocks in waitid until the app exits.
func waitExited(pid int) error {
	if pidfdWaitExited(pid) {
		return nil
	}
	return waitidExited(pid)
}

// waitidExited is waitExited without a pidfd: a thread blocks in waitid.
func waitidExited(pid int) error {
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

// openLog opens the app's log as openAppLog does, without offering the
// file to the netpoller, which refuses a regular file: 2 system calls
// instead of 6, at every start.
func openLog(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_APPEND|syscall.O_CLOEXEC, 0o644)
		switch err {
		case nil:
			return os.NewFile(uintptr(fd), path), nil
		case syscall.EINTR:
			continue
		default:
			return nil, fmt.Errorf("app log: %w", &os.PathError{Op: "open", Path: path, Err: err})
		}
	}
}

// stdoutPipe returns the pipe for the app's stdout, as os.Pipe does but
// with only the read end non-blocking and polled: the write end, the
// app's, is blocking from the start, so that neither exec (Fd) nor Close
// has to take it out of the netpoller (6 system calls instead of 11).
func stdoutPipe() (r, w *os.File, err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(p[0]), syscall.F_SETFL, syscall.O_NONBLOCK); errno != 0 {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, nil, os.NewSyscallError("fcntl", errno)
	}
	return os.NewFile(uintptr(p[0]), "|0"), os.NewFile(uintptr(p[1]), "|1"), nil
}
