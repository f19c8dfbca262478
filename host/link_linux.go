package host

import (
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// linkable reports whether the output fi, open and checked, may be linked
// into the requestor's side rather than copied: a file of the host's own
// user, which the host may read and write (as it may a copy: chaos
// rewrites results in place), and with no name but the one in the
// provider's dir, so that the link can alter nothing else and, once the
// provider's dir is removed, the result has the one name a copy would have.
func linkable(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink == 1 && int(st.Uid) == os.Getuid() && fi.Mode().Perm()&0o600 == 0o600
}

// linkOpened gives the open file f the new name dst, which must not exist:
// the very file that was opened and checked, whatever has become of the
// path it was opened by (linkat of its /proc/self/fd entry, which any user
// may do for a file it has open). It fails, and the caller copies, when
// /proc is not there or dst is on another file system.
func linkOpened(f *os.File, dst string) error {
	const (
		atFDCWD         = -0x64 // AT_FDCWD
		atSymlinkFollow = 0x400 // AT_SYMLINK_FOLLOW
	)
	src, err := syscall.BytePtrFromString("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return err
	}
	to, err := syscall.BytePtrFromString(dst)
	if err != nil {
		return err
	}
	for {
		fd := atFDCWD
		_, _, errno := syscall.Syscall6(syscall.SYS_LINKAT, uintptr(fd), uintptr(unsafe.Pointer(src)),
			uintptr(fd), uintptr(unsafe.Pointer(to)), atSymlinkFollow, 0)
		runtime.KeepAlive(f)
		switch errno {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		default:
			return &os.LinkError{Op: "link", Old: "/proc/self/fd", New: dst, Err: errno}
		}
	}
}
