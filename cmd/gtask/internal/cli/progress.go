package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/requestor"
)

// The progress modes of --progress.
const (
	progressAuto  = "auto"  // bar on a terminal, lines elsewhere
	progressBar   = "bar"   // a live bar, redrawn in place
	progressLines = "lines" // a line per notable event
	progressOff   = "off"   // nothing until the summary
)

// status is the bar's description: what is under way and what went wrong,
// omitting what is zero so that a clean run shows a short line.
func status(p host.Progress) string {
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", what, n))
		}
	}
	add(p.Computing, "computing")
	add(p.Verifying, "verifying")
	add(p.Failed, "failed")
	add(p.Retried, "retried")
	add(p.Injected, "injected")
	return strings.Join(parts, ", ")
}

// countsText renders a count map as "crash 2, wrong 1", in key order.
func countsText[K ~string](m map[K]int) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// eventLine is the line lines mode prints for ev, or "" for an event too
// routine to print (a node banned after a failure: the failure's line
// says it all). Accepted parts are not printed one by one but every
// tenth of the total (lastTenth remembers which was printed last), so that
// a task of a thousand parts does not flood a CI log.
func eventLine(ev host.Event, lastTenth *int) string {
	part := "subtask " + ev.Subtask
	if ev.Part != nil {
		part = fmt.Sprintf("part %d", *ev.Part)
		if ev.Attempt > 0 {
			part += fmt.Sprintf(" attempt %d", ev.Attempt)
		}
	}
	p := ev.Progress
	switch ev.Kind {
	case host.EventTaskCreated:
		if ev.Parts > 0 {
			return fmt.Sprintf("task %s created: %d parts", ev.Task, ev.Parts)
		}
		return fmt.Sprintf("task %s created", ev.Task)
	case host.EventRequestorDied:
		return "the requestor died: " + ev.Reason
	case host.EventRequestorStarted:
		if ev.Attempt > 1 {
			return fmt.Sprintf("the requestor restarted (start %d)", ev.Attempt)
		}
	case host.EventChaosInjected:
		return fmt.Sprintf("chaos: %s on %s", ev.Chaos, part)
	case host.EventBackupStarted:
		return fmt.Sprintf("%s is slow: backup %d on %s (%s)", part, ev.Backup, ev.Node, ev.Reason)
	case host.EventComputeFailed:
		if ev.Backup > 0 {
			part += fmt.Sprintf(" backup %d", ev.Backup)
		}
		return fmt.Sprintf("%s failed (%s): %s", part, ev.Fail, ev.Reason)
	case host.EventVerifyError:
		return fmt.Sprintf("verifying %s failed (try %d): %s", part, ev.Try, ev.Reason)
	case host.EventSubtaskVerified:
		switch ev.Verdict {
		case requestor.Failure.String():
			return fmt.Sprintf("%s rejected: %s", part, ev.Reason)
		case requestor.Success.String():
			if p.Parts > 0 {
				if tenth := p.Done * 10 / p.Parts; tenth > *lastTenth {
					*lastTenth = tenth
					return fmt.Sprintf("%d/%d parts done", p.Done, p.Parts)
				}
			}
		}
	}
	return ""
}

// reporter shows a run's progress on w (stderr) as the events come: a live
// bar, a line per notable event, or nothing. The runner calls event one
// event at a time, but notice comes from elsewhere (the interrupt), so
// every method takes mu. It owns one goroutine, the bar's clock, which
// close stops and waits for.
type reporter struct {
	mu        sync.Mutex
	w         io.Writer
	mode      string
	start     time.Time
	p         host.Progress
	lastTenth int
	bar       *progressbar.ProgressBar // mode bar, once the number of parts is known

	stop chan struct{}
	done chan struct{}
}

// newReporter starts a reporter in mode (progressBar, progressLines or
// progressOff; resolve progressAuto first).
func newReporter(w io.Writer, mode string) *reporter {
	r := &reporter{w: w, mode: mode, start: time.Now()}
	if mode == progressBar {
		r.stop, r.done = make(chan struct{}), make(chan struct{})
		go r.tick()
	}
	return r
}

// tick redraws the bar twice a second, so that elapsed time and rate move
// while no event comes (a long part, a hang waiting for its deadline).
func (r *reporter) tick() {
	defer close(r.done)
	tk := time.NewTicker(500 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tk.C:
			r.mu.Lock()
			r.redraw()
			r.mu.Unlock()
		}
	}
}

// event shows ev.
func (r *reporter) event(ev host.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p = ev.Progress
	switch r.mode {
	case progressLines:
		if line := eventLine(ev, &r.lastTenth); line != "" {
			r.println(line)
		}
	case progressBar:
		if r.bar == nil && ev.Kind == host.EventTaskCreated {
			r.bar = newBar(r.w, r.p.Parts)
		}
		r.redraw()
	}
}

// newBar makes the bar: done/total, rate, elapsed and estimated time left,
// then what is under way and what failed. The bar itself is narrow and
// shrinks on a narrow terminal, so that the line never wraps (a wrapped
// line cannot be redrawn in place). With parts 0 (an app that does not
// publish them) it is a spinner with the count and elapsed time.
func newBar(w io.Writer, parts int) *progressbar.ProgressBar {
	if parts <= 0 {
		parts = -1
	}
	bar := progressbar.NewOptions(parts,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(24),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("parts"),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionUseANSICodes(true),
		// Events can come by the hundred per second; the reporter's tick
		// draws the last state anyway.
		progressbar.OptionThrottle(100*time.Millisecond),
		// No goroutine of the library's own (it has one for a bar of
		// unknown length): the reporter's tick redraws.
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionSetTheme(progressbar.ThemeASCII),
	)
	bar.StartWithoutRender()
	return bar
}

// notice prints one line for people, whatever the mode, without tearing
// the bar.
func (r *reporter) notice(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.println(fmt.Sprintf(format, args...))
	r.redraw()
}

// println prints a line above the bar. Called with mu held.
func (r *reporter) println(line string) {
	if r.bar != nil {
		_ = r.bar.Clear()
	}
	if r.mode == progressLines {
		line = fmt.Sprintf("[%s] %s", fmtDuration(time.Since(r.start)), line)
	}
	fmt.Fprintln(r.w, line)
}

// redraw draws the bar as of the last event. Called with mu held.
func (r *reporter) redraw() {
	if r.bar == nil {
		return
	}
	r.bar.Describe(status(r.p))
	_ = r.bar.Set(r.p.Done)
}

// close stops the bar's clock and erases the bar, so that the summary
// starts on a clean line. Safe to call more than once, from the goroutine
// that made the reporter.
func (r *reporter) close() {
	if r.stop != nil {
		close(r.stop)
		<-r.done
		r.stop = nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		_ = r.bar.Exit()
		_ = r.bar.Clear()
		r.bar = nil
	}
}

// fmtDuration rounds d for people: 850ms, 12.3s, 4m5s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}
