package host

import (
	"os"

	"golang.org/x/sys/unix"
)

// pidfdWaitExited waits as waitExited does, through a pidfd that the
// runtime's netpoller watches, so that no thread is blocked for the app's
// whole life as one is in waitid. It reports whether the app has exited;
// false means pidfds cannot wait here (Linux before 5.4, a seccomp filter
// refusing them), nothing has been waited for, and the caller waits its
// own way.
func pidfdWaitExited(pid int) bool {
	// os.NewFile polls a non-blocking descriptor only.
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err == unix.EINVAL {
		// No PIDFD_NONBLOCK before Linux 5.10.
		fd, err = unix.PidfdOpen(pid, 0)
		if err == nil {
			if err := unix.SetNonblock(fd, true); err != nil {
				unix.Close(fd)
				return false
			}
		}
	}
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	exited := false
	// Read asks waitid first, then each time the pidfd turns readable,
	// which it does when the process exits. It fails at once for a
	// descriptor the netpoller does not take.
	_ = rc.Read(func(fd uintptr) bool {
		for {
			var info unix.Siginfo
			err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, nil)
			switch err {
			case nil:
				// Nothing to wait for yet (WNOHANG) leaves Signo 0.
				exited = info.Signo != 0
				return exited
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			default:
				// EINVAL: waitid without P_PIDFD (Linux 5.3).
				return true
			}
		}
	})
	return exited
}
