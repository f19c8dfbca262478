//go:build unix

package appbuild

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockPoll is how often a build waiting for another's lock tries again.
const lockPoll = 50 * time.Millisecond

// lockEntry takes the lock of the cache entry dir, waiting while another
// build, of this process or another, holds it, until ctx ends. It returns
// the func that gives it back; drop, when true, removes the lock file and
// the entry, if empty, first (a build that failed leaves nothing behind).
func lockEntry(ctx context.Context, entry string) (func(drop bool), error) {
	path := filepath.Join(entry, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	t := time.NewTicker(lockPoll)
	defer t.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, err
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		}
	}
	return func(drop bool) {
		if drop {
			_ = os.Remove(path)
			_ = os.Remove(entry)
		}
		f.Close() // gives the lock back
	}, nil
}
