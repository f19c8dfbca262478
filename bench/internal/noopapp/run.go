package noopapp

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gtask/gtask/host"
)

// RunStats is what one host.Run of the no-op app took.
type RunStats struct {
	Wall time.Duration // the whole Run
	// Setup is Run's start to task_created; Teardown the last verdict to
	// Run's return.
	Setup, Teardown time.Duration
	// Attempts are the subtask_computed events' times.
	Attempts []time.Duration
}

// RunTask runs one no-op task of n parts with launcher on p provider slots,
// in a fresh work dir under tmp that it removes, and checks that it ended
// right: finished, no failed attempt, and the app's own count of parts in
// done.txt.
func RunTask(ctx context.Context, launcher host.Launcher, tmp string, n, p int) (RunStats, error) {
	var st RunStats
	work, err := os.MkdirTemp(tmp, "run-")
	if err != nil {
		return st, err
	}
	defer os.RemoveAll(work)
	var created, lastVerified time.Time
	start := time.Now()
	res, err := host.Run(ctx, host.RunConfig{
		Launcher:  launcher,
		TaskID:    "noop",
		WorkDir:   work,
		Params:    json.RawMessage(fmt.Sprintf(`{"parts": %d}`, n)),
		Providers: p,
		OnEvent: func(ev host.Event) {
			switch ev.Kind {
			case host.EventTaskCreated:
				created = time.Now()
			case host.EventSubtaskComputed:
				st.Attempts = append(st.Attempts, ev.Took)
			case host.EventSubtaskVerified:
				lastVerified = time.Now()
			}
		},
	})
	end := time.Now()
	if err != nil {
		return st, err
	}
	// The run's Counts.Done may miss the last verdicts: Run returns once
	// the app says the task finished, which it does in the last Verify.
	// The app's own count is the output.
	out, _ := os.ReadFile(filepath.Join(res.OutputsDir, "done.txt"))
	if res.Outcome != host.Finished || string(out) != fmt.Sprintf("%d parts\n", n) || res.Counts.Failed != 0 {
		return st, fmt.Errorf("no-op run: %s (%s): done.txt says %q of %d parts, %d failed attempts; events in %s",
			res.Outcome, res.Reason, out, n, res.Counts.Failed, res.EventsPath)
	}
	st.Wall = end.Sub(start)
	st.Setup = created.Sub(start)
	st.Teardown = end.Sub(lastVerified)
	return st, nil
}
