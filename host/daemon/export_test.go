package daemon

import "time"

// SweepUploads sweeps d's uploads as if it were now.
func SweepUploads(d *Daemon, now time.Time) (int, error) { return d.sweepUploads(now) }

// AfterKillIntent makes d's kills call f once their intent is stored,
// before they stop any run.
func AfterKillIntent(d *Daemon, f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hooks.afterKillIntent = f
}

// PutFamilyToken stores a family token of task as an older gtask did:
// not listed in the task's record, so not deleted when it ends.
func PutFamilyToken(d *Daemon, user, task string) (string, error) {
	return d.newToken(tokenRec{User: user, Task: task})
}

// AfterStage makes d's CreateTask call f once it has staged the inputs,
// before it stores the task.
func AfterStage(d *Daemon, f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hooks.afterStage = f
}
