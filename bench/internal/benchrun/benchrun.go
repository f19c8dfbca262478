// Package benchrun holds what the bench programs' main functions share:
// where their files go, their list flags, and their CPU profile.
package benchrun

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
)

// TmpfsDir is where a bench's files go by default: /dev/shm, a tmpfs on
// Linux, when this process may write there, so that the figures measure
// gtask rather than the disk (creating a file on a slow file system costs
// more than a no-op subtask's whole host side); else "", os.TempDir().
// prefix names the probe file it writes and removes.
func TmpfsDir(prefix string) string {
	const shm = "/dev/shm"
	if fi, err := os.Stat(shm); err == nil && fi.IsDir() {
		if f, err := os.CreateTemp(shm, prefix+"-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return shm
		}
	}
	return ""
}

// Levels parses a comma-separated list of positive numbers, the value of
// flag name, e.g. "1,2,4".
func Levels(name, s string) ([]int, error) {
	var levels []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-%s: %q is not a positive number", name, f)
		}
		levels = append(levels, n)
	}
	return levels, nil
}

// StartProfile starts a CPU profile written to path, when path is not
// empty, and returns the function that stops it and closes the file; safe
// to call more than once.
func StartProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	stopped := false
	return func() {
		if !stopped {
			stopped = true
			pprof.StopCPUProfile()
			f.Close()
		}
	}, nil
}
