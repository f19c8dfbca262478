package sdk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/gtask/gtask/internal/files"
	"github.com/gtask/gtask/internal/taskstore"
)

// statusFile is the task's outcome for hosts that share the file system, in
// RequestorDir.State().
const statusFile = "status.json"

// Status is the content of {task dir}/.gtask/status.json, written (by an
// atomic rename) once a task has ended: State is "finished", "failed" or
// "aborted", Reason says why a task failed. While the task runs the file
// does not exist.
type Status struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// ReadStatus reads the status.json of the task in taskDir. It returns an
// error wrapping fs.ErrNotExist while the task has not ended.
func ReadStatus(taskDir string) (Status, error) {
	var st Status
	raw, err := os.ReadFile(filepath.Join(RequestorDir{Root: taskDir}.State(), statusFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("%s: %w", statusFile, err)
	}
	return st, nil
}

// syncStatus writes status.json when the task has ended and the file does
// not say so yet. A crash between the store's commit and this write is
// repaired when the store is next opened.
func (h *requestorHandler[P, S]) syncStatus(e *taskEntry[P, S]) {
	t, err := e.store.Task()
	if err != nil || !t.State.Ended() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.status == t.State {
		return
	}
	raw, _ := json.Marshal(Status{State: t.State.String(), Reason: t.Reason})
	if err := writeAtomic(filepath.Join(e.dir.State(), statusFile), raw); err != nil {
		h.log.Error("writing status.json failed", "task", t.ID, "err", err)
		return
	}
	e.status = t.State
	h.log.Info("task ended", "task", t.ID, "state", t.State, "reason", t.Reason)
}

// writeAtomic replaces path with data: readers see the old file or the new
// one, never a part of it, even across a crash.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// merge runs the app's Merge for a task whose parts are all accepted, into
// a staging dir, then moves what it wrote into task_outputs and marks the
// task finished. An error of Merge fails the task (and merge returns nil:
// the call that ran it succeeded); a merge cancelled by AbortTask or
// Shutdown, or an I/O error moving the files, leaves the task merging, for
// the next Verify or the next start to retry. Merge may thus run more than
// once, but only ever over the same results, into an empty staging dir.
func (h *requestorHandler[P, S]) merge(e *taskEntry[P, S]) error {
	e.mergeMu.Lock()
	defer e.mergeMu.Unlock()
	t, err := e.store.Task()
	if err != nil {
		return err
	}
	if t.State != taskstore.TaskMerging {
		return nil // done by another call meanwhile
	}
	staging := filepath.Join(e.dir.State(), "merge")
	if err := os.RemoveAll(staging); err != nil {
		return fmt.Errorf("merge staging: %w", err)
	}
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return fmt.Errorf("merge staging: %w", err)
	}
	results := make([]*Result[P, S], 0, t.Parts)
	err = e.store.Results(func(r taskstore.Result) error {
		var s S
		if err := json.Unmarshal(r.Params, &s); err != nil {
			return fmt.Errorf("the params of part %d: %w", r.Part, err)
		}
		results = append(results, &Result[P, S]{Task: e.task, SubtaskID: r.SubtaskID, NodeID: r.Node,
			Part: r.Part, Params: s, File: filepath.Join(e.dir.SubtaskOutput(r.SubtaskID), r.File)})
		return nil
	})
	if err != nil {
		return fmt.Errorf("task %q: reading the results: %w", t.ID, err)
	}
	task := *e.task
	task.Dir.outputs = staging
	h.log.Info("merging", "task", t.ID, "parts", t.Parts)
	if err := h.callMerge(e, &task, results); err != nil {
		if e.ctx.Err() != nil {
			return fmt.Errorf("task %q: merge: %w", t.ID, context.Cause(e.ctx))
		}
		if err := e.store.Fail("merging the results: " + err.Error()); err != nil {
			return err
		}
		h.syncStatus(e)
		return nil
	}
	if err := publish(staging, e.dir.Outputs()); err != nil {
		return fmt.Errorf("task %q: moving the merged files into %s: %w", t.ID, e.dir.Outputs(), err)
	}
	if err := e.store.Finish(); err != nil {
		return err
	}
	h.syncStatus(e)
	os.RemoveAll(staging)
	return nil
}

// callMerge runs the app's Merge; a panic in it is the app's failure to
// merge (the task fails) rather than a crash of the call that ran it.
func (h *requestorHandler[P, S]) callMerge(e *taskEntry[P, S], task *Task[P], results []*Result[P, S]) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Merge panicked: %v", p)
		}
	}()
	return h.app.Merge(e.ctx, task, results)
}

// publish empties dst, then moves every entry of staging into it, and
// makes that durable.
func publish(staging, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	old, err := os.ReadDir(dst)
	if err != nil {
		return err
	}
	for _, de := range old {
		if err := os.RemoveAll(filepath.Join(dst, de.Name())); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(staging)
	if err != nil {
		return err
	}
	for _, de := range entries {
		from, to := filepath.Join(staging, de.Name()), filepath.Join(dst, de.Name())
		err := os.Rename(from, to)
		if errors.Is(err, syscall.EXDEV) {
			// task_outputs is a mount of its own (a container's volume,
			// say): copy instead.
			err = files.CopyTree(from, to, true)
		}
		if err != nil {
			return err
		}
	}
	return errors.Join(syncDir(dst), syncDir(staging))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// findResult finds the one result file in subtask_outputs/{subtaskID}/. A
// missing or ambiguous result is the result's fault, not the call's: it
// comes back as a rejection reason.
func findResult(d RequestorDir, subtaskID string) (file, reject string, err error) {
	dir := d.SubtaskOutput(subtaskID)
	rel := filepath.Join(filepath.Base(d.SubtaskOutputs()), subtaskID)
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Sprintf("no result: %s/ does not exist", rel), nil
	case err != nil:
		return "", "", fmt.Errorf("subtask %q: reading its result: %w", subtaskID, err)
	}
	var files []string
	for _, de := range entries {
		if !de.Type().IsRegular() {
			return "", fmt.Sprintf("%s/ holds %q, which is not a regular file; a result is exactly one regular file", rel, de.Name()), nil
		}
		files = append(files, de.Name())
	}
	switch len(files) {
	case 0:
		return "", fmt.Sprintf("no result: %s/ is empty", rel), nil
	case 1:
		return filepath.Join(dir, files[0]), "", nil
	}
	return "", fmt.Sprintf("%s/ holds %d files (%s); a result is exactly one file", rel, len(files), strings.Join(files, ", ")), nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
