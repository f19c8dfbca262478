package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
)

// UnreachableError is Wait's error when it gave up on a daemon that did
// not answer for the WaitPolicy's GiveUp.
type UnreachableError struct {
	// Addr is the daemon's address.
	Addr string
	// TaskID is the task waited for.
	TaskID string
	// For is how long the daemon has not answered.
	For time.Duration
	// Last is the last call's error.
	Last error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("client: waiting for task %s: the gtask daemon at %s has not answered for %s, giving up (is `gtask serve` running?): %v",
		e.TaskID, e.Addr, e.For.Round(time.Second), e.Last)
}

func (e *UnreachableError) Unwrap() error { return e.Last }

// Wait waits until the task id has ended, in any state (FINISHED, FAILED,
// ABORTED, KILLED), and answers it as it ended. It follows the task's
// events (WatchTask); when the stream breaks (the daemon restarts, the
// network fails) it polls GetTask with exponential back-off (WaitPolicy:
// 100 ms doubling to 5 s) and opens the watch again once the daemon
// answers. It never waits for ever on a daemon that is gone: when the
// daemon has not answered for the policy's GiveUp (2 minutes), it returns
// an *UnreachableError. An answer that will not change (an unknown task,
// a refused token) is returned at once, as is ctx's end.
func (c *Client) Wait(ctx context.Context, id string) (*hostv1.Task, error) {
	p := c.wait
	delay := p.MinDelay
	var failingSince time.Time // zero while the daemon answers
	var cursor int64
	sawEnd := false // the watch saw the task end: look at once
	for {
		t, err := c.Get(ctx, id)
		switch {
		case err == nil:
			failingSince = time.Time{}
			if Terminal(t.GetState()) {
				return t, nil
			}
			if sawEnd {
				// The watch said it ended but GetTask disagrees: poll.
				sawEnd = false
				break
			}
			var got bool
			sawEnd, got, err = c.watchEnd(ctx, id, &cursor)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if sawEnd {
				continue
			}
			if got {
				// The watch worked for a while: the daemon was there.
				delay = p.MinDelay
			}
			_ = err // the next GetTask says whether the daemon is reachable
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !transient(err):
			return nil, err
		default:
			sawEnd = false
			now := time.Now()
			if failingSince.IsZero() {
				failingSince = now
			} else if d := now.Sub(failingSince); d >= p.GiveUp {
				return nil, &UnreachableError{Addr: c.addr, TaskID: id, For: d, Last: err}
			}
		}
		if err := sleep(ctx, delay); err != nil {
			return nil, err
		}
		delay = min(2*delay, p.MaxDelay)
	}
}

// watchEnd follows the task's events from *cursor until one says it ended
// (ended) or the stream ends or breaks; got says whether any event came.
func (c *Client) watchEnd(ctx context.Context, id string, cursor *int64) (ended, got bool, err error) {
	errEnded := errors.New("ended")
	err = c.Watch(ctx, id, false, *cursor, func(ev *hostv1.Event) error {
		got = true
		if ev.GetCursor() > *cursor {
			*cursor = ev.GetCursor()
		}
		if ev.GetTaskId() == id && Terminal(ev.GetState()) {
			return errEnded
		}
		return nil
	})
	switch {
	case errors.Is(err, errEnded):
		return true, got, nil
	case err == nil:
		// The daemon ends the stream once the task has ended.
		return true, got, nil
	}
	return false, got, err
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
