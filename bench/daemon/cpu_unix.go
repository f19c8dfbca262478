//go:build unix

package main

import (
	"syscall"
	"time"
)

// cpuSelf returns the CPU time (user and system) this process has used so
// far: the daemon's, its clients' and the floor's host side, not their
// children's.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
