package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"

	"github.com/gtask/gtask/client"
	"github.com/gtask/gtask/sdk"
)

// app runs a sweep. It holds no state: the daemon's client comes from the
// requestor's environment at each call.
type app struct{}

const (
	receiptFile = "child.json"
	sweepFile   = "sweep.json"
)

// Split creates one child task per run, under this task, and makes each a
// part. It runs once, at CreateTask: a requestor that restarts reopens the
// parts and does not create the children again.
func (app) Split(ctx context.Context, t *sdk.Task[Params]) ([]sdk.Part[PartParams], error) {
	c, err := daemonClient(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	parts := make([]sdk.Part[PartParams], len(t.Params.Runs))
	for i, run := range t.Params.Runs {
		child, err := c.Submit(ctx, client.SubmitRequest{App: t.Params.App, Params: run})
		if err != nil {
			return nil, fmt.Errorf("run %d: creating its task: %w", i, err)
		}
		t.Log.Info("child task", "run", i, "task", child.GetTaskId())
		parts[i] = sdk.Part[PartParams]{Params: PartParams{Part: i, Child: child.GetTaskId(), Params: run}}
	}
	return parts, nil
}

// Compute hands in a receipt naming the part's child task: the work itself
// is the child's, on the daemon's providers.
func (app) Compute(ctx context.Context, s *sdk.Subtask[PartParams]) (string, error) {
	out, err := s.OutputPath(receiptFile)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(receipt{Child: s.Params.Child})
	if err != nil {
		return "", err
	}
	return out, os.WriteFile(out, b, 0o644)
}

type receipt struct {
	Child string `json:"child"`
}

// Verify checks the receipt and waits for the child task to end: the part
// is done when its child finished. A child that failed, was aborted or
// killed fails the part (its attempts are spent on the same child, so the
// sweep fails, saying why).
func (app) Verify(ctx context.Context, r *sdk.Result[Params, PartParams]) (sdk.Verdict, error) {
	b, err := os.ReadFile(r.File)
	if err != nil {
		return sdk.Reject("no receipt: %v", err), nil
	}
	var rc receipt
	if err := json.Unmarshal(b, &rc); err != nil || rc.Child != r.Params.Child {
		return sdk.Reject("the receipt %q does not name child task %s", b, r.Params.Child), nil
	}
	c, err := daemonClient(ctx)
	if err != nil {
		return sdk.Verdict{}, err
	}
	defer c.Close()
	task, err := c.Wait(ctx, r.Params.Child)
	if err != nil {
		return sdk.Verdict{}, fmt.Errorf("waiting for child task %s: %w", r.Params.Child, err)
	}
	if task.GetState() != hostv1.TaskState_TASK_STATE_FINISHED {
		return sdk.Reject("run %d: child task %s ended %s: %s", r.Part, task.GetTaskId(), task.GetState(), task.GetReason()), nil
	}
	return sdk.Accept(), nil
}

// Merge takes each child's results into task_outputs/run-N/ and writes
// sweep.json: for each run, its params, its task and its files.
func (app) Merge(ctx context.Context, t *sdk.Task[Params], results []*sdk.Result[Params, PartParams]) error {
	c, err := daemonClient(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	type entry struct {
		Run    int             `json:"run"`
		Task   string          `json:"task"`
		Params json.RawMessage `json:"params"`
		Dir    string          `json:"dir"`
		Files  []string        `json:"files"`
	}
	sweep := make([]entry, len(results))
	for _, r := range results {
		dir := fmt.Sprintf("run-%d", r.Part)
		files, err := c.Results(ctx, r.Params.Child, filepath.Join(t.Dir.Outputs(), dir))
		if err != nil {
			return fmt.Errorf("run %d: the results of task %s: %w", r.Part, r.Params.Child, err)
		}
		sweep[r.Part] = entry{Run: r.Part, Task: r.Params.Child, Params: r.Params.Params, Dir: dir, Files: files}
	}
	b, err := json.MarshalIndent(sweep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(t.Dir.Outputs(), sweepFile), append(b, '\n'), 0o644)
}

// daemonClient is the client of the daemon running this task, from the
// environment it gave the requestor.
func daemonClient(ctx context.Context) (*client.Client, error) {
	if os.Getenv(client.EnvHost) == "" || os.Getenv(client.EnvFamilyToken) == "" {
		return nil, errors.New("sweep runs its parts as child tasks of the gtask serve daemon, which sets " +
			client.EnvHost + " and " + client.EnvFamilyToken + ": submit it with `gtask submit`, not `gtask run`")
	}
	return client.FromEnv(ctx)
}
