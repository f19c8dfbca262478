package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
	"github.com/gtask/gtask/taskapi"
)

func TestCreateTask(t *testing.T) {
	tests := []struct {
		name     string
		params   string
		max      int
		split    func(ctx context.Context, t *sdk.Task[tparams]) ([]sdk.Part[pparams], error)
		code     codes.Code
		contains string
	}{
		{name: "valid", params: `{"parts": 3}`},
		{name: "empty params give the zero P", params: ""},
		{name: "null params", params: "null"},
		{name: "unknown field", params: `{"prats": 3}`, code: codes.InvalidArgument, contains: `task_params_json: unknown field "prats"`},
		{name: "wrong type", params: `{"parts": "3"}`, code: codes.InvalidArgument, contains: `field "parts": got a JSON string, want int`},
		{name: "wrong type, nested", params: `{"nested": {"count": true}}`, code: codes.InvalidArgument, contains: `field "nested.count"`},
		{name: "not an object", params: `[1]`, code: codes.InvalidArgument, contains: `got a JSON array`},
		{name: "Validate refuses", params: `{"parts": -1}`, code: codes.InvalidArgument, contains: "parts must not be negative"},
		{name: "Split refuses", params: `{}`, code: codes.InvalidArgument, contains: "no such scene",
			split: func(context.Context, *sdk.Task[tparams]) ([]sdk.Part[pparams], error) {
				return nil, fmt.Errorf("scene: no such scene: %w", sdk.ErrInvalidParams)
			}},
		{name: "Split field error", params: `{}`, code: codes.InvalidArgument, contains: "scene: missing",
			split: func(context.Context, *sdk.Task[tparams]) ([]sdk.Part[pparams], error) {
				return nil, &taskapi.FieldError{Field: "scene", Reason: "missing"}
			}},
		{name: "Split fails", params: `{}`, code: codes.Internal, contains: "disk on fire",
			split: func(context.Context, *sdk.Task[tparams]) ([]sdk.Part[pparams], error) {
				return nil, errors.New("disk on fire")
			}},
		{name: "no parts", params: `{}`, code: codes.InvalidArgument, contains: "splits into no parts",
			split: func(context.Context, *sdk.Task[tparams]) ([]sdk.Part[pparams], error) { return nil, nil }},
		{name: "more parts than max", params: `{"parts": 3}`, max: 2, code: codes.Internal, contains: "max_subtasks_count is 2"},
		{name: "as many parts as max", params: `{"parts": 2}`, max: 2},
		{name: "a dependency on a later part", params: `{}`, code: codes.Internal, contains: "only on earlier parts",
			split: func(context.Context, *sdk.Task[tparams]) ([]sdk.Part[pparams], error) {
				return []sdk.Part[pparams]{{DependsOn: []int{1}}, {}}, nil
			}},
		{name: "a resource outside subtask_inputs", params: `{}`, code: codes.Internal, contains: `resource "../x"`,
			split: func(context.Context, *sdk.Task[tparams]) ([]sdk.Part[pparams], error) {
				return []sdk.Part[pparams]{{Resources: []string{"../x"}}}, nil
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := &fakeApp{split: tc.split}
			hs := newHarness(t, app, sdk.WithEnvironment("docker_gpu", map[string]string{"image": "img", "tag": "1"}), sdk.WithMinMemory(512))
			task, err := hs.h.CreateTask(hs.ctx, "T", tc.max, rawOrNil(tc.params))
			if tc.code != codes.OK {
				require.Error(t, err)
				assert.Equal(t, tc.code, code(err), "%v", err)
				assert.Contains(t, msg(err), tc.contains)
				// A refused task does not exist: no store, and CreateTask
				// may be called again.
				assert.NoFileExists(t, filepath.Join(hs.wd, "T", ".gtask", "state.db"))
				_, err := hs.h.HasPendingSubtasks(hs.ctx, "T")
				assert.Equal(t, codes.NotFound, code(err))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "docker_gpu", task.EnvID)
			assert.JSONEq(t, `{"image":"img","tag":"1"}`, string(task.Prerequisites))
			assert.Equal(t, 512.0, task.MinMemoryMiB)
			for _, d := range []string{"task_inputs", "subtask_inputs", "task_outputs", "subtask_outputs", ".gtask"} {
				assert.DirExists(t, filepath.Join(hs.wd, "T", d))
			}
			assert.FileExists(t, filepath.Join(hs.wd, "T", ".gtask", "state.db"))
			assert.True(t, hs.pending("T"))
		})
	}
}

func TestCreateTaskPublishesParts(t *testing.T) {
	hs := newHarness(t, &fakeApp{})
	taskJSON := filepath.Join(hs.wd, "T", ".gtask", "task.json")
	assert.NoFileExists(t, taskJSON)
	hs.create("T", `{"parts": 3}`)
	raw, err := os.ReadFile(taskJSON)
	require.NoError(t, err)
	assert.JSONEq(t, `{"parts": 3}`, string(raw), "a host reads the number of parts here")
}

func TestCreateTaskTwice(t *testing.T) {
	hs := newHarness(t, &fakeApp{})
	hs.create("T", `{}`)
	_, err := hs.h.CreateTask(hs.ctx, "T", 0, nil)
	assert.Equal(t, codes.AlreadyExists, code(err))
	assert.ErrorIs(t, err, sdk.ErrTaskExists)
	hs.restart()
	_, err = hs.h.CreateTask(hs.ctx, "T", 0, nil)
	assert.Equal(t, codes.AlreadyExists, code(err), "after a restart too")
}

func TestDefaultEnvironment(t *testing.T) {
	hs := newHarness(t, &fakeApp{})
	task, err := hs.h.CreateTask(hs.ctx, "T", 0, nil)
	require.NoError(t, err)
	assert.Equal(t, taskapi.DockerCPUEnvID(), task.EnvID)
	assert.Empty(t, task.Prerequisites)
	assert.Zero(t, task.MinMemoryMiB)
}

func TestBadPrerequisites(t *testing.T) {
	hs := newHarness(t, &fakeApp{}, sdk.WithEnvironment("docker_cpu", func() {}))
	_, err := hs.h.CreateTask(hs.ctx, "T", 0, nil)
	assert.Equal(t, codes.Internal, code(err))
	assert.Contains(t, msg(err), "prerequisites")
}

func TestUnknownTask(t *testing.T) {
	hs := newHarness(t, &fakeApp{})
	calls := map[string]func() error{
		"NextSubtask":        func() error { _, err := hs.h.NextSubtask(hs.ctx, "nope", "s", "n"); return err },
		"Verify":             func() error { _, _, err := hs.h.Verify(hs.ctx, "nope", "s"); return err },
		"DiscardSubtasks":    func() error { _, err := hs.h.DiscardSubtasks(hs.ctx, "nope", nil); return err },
		"HasPendingSubtasks": func() error { _, err := hs.h.HasPendingSubtasks(hs.ctx, "nope"); return err },
		"AbortTask":          func() error { return hs.h.AbortTask(hs.ctx, "nope") },
		"AbortSubtask":       func() error { return hs.h.AbortSubtask(hs.ctx, "nope", "s") },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			assert.Equal(t, codes.NotFound, code(err), "%v", err)
			assert.ErrorIs(t, err, sdk.ErrUnknownTask)
		})
	}
	// A task dir without a store (the host put task_inputs, no CreateTask
	// yet) is unknown too, and creating it afterwards works.
	require.NoError(t, os.MkdirAll(filepath.Join(hs.wd, "later", "task_inputs"), 0o755))
	_, err := hs.h.HasPendingSubtasks(hs.ctx, "later")
	assert.Equal(t, codes.NotFound, code(err))
	hs.create("later", "")
	assert.True(t, hs.pending("later"))
}

func TestUnknownSubtask(t *testing.T) {
	hs := newHarness(t, &fakeApp{})
	hs.create("T", "")
	_, _, err := hs.h.Verify(hs.ctx, "T", "nope")
	assert.Equal(t, codes.NotFound, code(err))
	assert.ErrorIs(t, err, sdk.ErrUnknownSubtask)
	assert.Equal(t, codes.NotFound, code(hs.h.AbortSubtask(hs.ctx, "T", "nope")))
	ids, err := hs.h.DiscardSubtasks(hs.ctx, "T", []string{"nope"})
	require.NoError(t, err)
	assert.Empty(t, ids)
}

func TestNextSubtask(t *testing.T) {
	app := &fakeApp{split: func(ctx context.Context, t *sdk.Task[tparams]) ([]sdk.Part[pparams], error) {
		return []sdk.Part[pparams]{
			{Params: pparams{I: 7}, Resources: []string{"scene.blend", "tex/a.png"}},
			{Params: pparams{I: 8}},
		}, nil
	}}
	hs := newHarness(t, app)
	hs.create("T", "")
	st := hs.next("T", "a", "n1")
	assert.JSONEq(t, `{"part":0,"params":{"i":7}}`, string(st.Params))
	assert.Equal(t, []string{"scene.blend", "tex/a.png"}, st.Resources)
	st = hs.next("T", "b", "n1")
	assert.JSONEq(t, `{"part":1,"params":{"i":8}}`, string(st.Params))
	assert.Empty(t, st.Resources)
	assert.False(t, hs.pending("T"))
	hs.none("T", "c", "n2") // nothing now: an empty reply, no error
	_, err := hs.h.NextSubtask(hs.ctx, "T", "a", "n3")
	assert.Equal(t, codes.AlreadyExists, code(err))
	assert.ErrorIs(t, err, sdk.ErrSubtaskExists)
}

func TestVerifyResultFile(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(dir string)
		reject string // the FAILURE reason; "" for SUCCESS
	}{
		{name: "one file", setup: func(dir string) {
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "out.png"), []byte("x"), 0o644)
		}},
		{name: "no dir", setup: func(string) {}, reject: "does not exist"},
		{name: "empty dir", setup: func(dir string) { os.MkdirAll(dir, 0o755) }, reject: "is empty"},
		{name: "two files", setup: func(dir string) {
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "a"), nil, 0o644)
			os.WriteFile(filepath.Join(dir, "b"), nil, 0o644)
		}, reject: "holds 2 files (a, b)"},
		{name: "a directory", setup: func(dir string) { os.MkdirAll(filepath.Join(dir, "sub"), 0o755) }, reject: "not a regular file"},
		{name: "a symlink", setup: func(dir string) {
			os.MkdirAll(dir, 0o755)
			os.Symlink("/etc/passwd", filepath.Join(dir, "out"))
		}, reject: "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var seen *sdk.Result[tparams, pparams]
			app := &fakeApp{verify: func(ctx context.Context, r *sdk.Result[tparams, pparams]) (sdk.Verdict, error) {
				seen = r
				return sdk.Accept(), nil
			}}
			hs := newHarness(t, app)
			hs.create("T", `{"parts": 2, "nested": {"count": 5}}`)
			hs.next("T", "s", "node-9")
			tc.setup(filepath.Join(hs.wd, "T", "subtask_outputs", "s"))
			v, reason := hs.verify("T", "s")
			if tc.reject != "" {
				assert.Equal(t, requestor.Failure, v)
				assert.Contains(t, reason, tc.reject)
				assert.Nil(t, seen, "the app does not see a missing result")
				assert.True(t, hs.pending("T"), "the part is computable again")
				return
			}
			assert.Equal(t, requestor.Success, v)
			require.NotNil(t, seen)
			assert.Equal(t, filepath.Join(hs.wd, "T", "subtask_outputs", "s", "out.png"), seen.File)
			assert.Equal(t, "s", seen.SubtaskID)
			assert.Equal(t, "node-9", seen.NodeID)
			assert.Equal(t, 0, seen.Part)
			assert.Equal(t, pparams{I: 0}, seen.Params)
			assert.Equal(t, "T", seen.Task.ID)
			assert.Equal(t, 2, seen.Task.Params.Parts)
			assert.Equal(t, 5, seen.Task.Params.Nested.Count)
		})
	}
}

func TestVerifyAppOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		verdict sdk.Verdict
		err     error
		code    codes.Code
		want    requestor.Verdict
	}{
		{name: "accept", verdict: sdk.Accept(), want: requestor.Success},
		{name: "reject", verdict: sdk.Reject("bad pixel at %d", 3), want: requestor.Failure},
		{name: "await", verdict: sdk.AwaitData("need more"), want: requestor.AwaitingData},
		{name: "inconclusive", verdict: sdk.Inconclusive("can't tell"), want: requestor.Inconclusive},
		{name: "zero verdict", verdict: sdk.Verdict{}, code: codes.Internal},
		{name: "app error", err: errors.New("decoder crashed"), code: codes.Internal},
		{name: "app status error keeps its code", err: fmt.Errorf("nope: %w", sdk.ErrInvalidParams), code: codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := &fakeApp{verify: func(context.Context, *sdk.Result[tparams, pparams]) (sdk.Verdict, error) {
				return tc.verdict, tc.err
			}}
			hs := newHarness(t, app)
			hs.create("T", `{"parts": 2}`)
			hs.next("T", "s", "n1")
			hs.put("T", "s", "x")
			v, reason, err := hs.h.Verify(hs.ctx, "T", "s")
			if tc.code != codes.OK {
				assert.Equal(t, tc.code, code(err), "%v", err)
				// Nothing recorded: once the app is fixed, Verify works.
				app.verify = nil
				v, _ := hs.verify("T", "s")
				assert.Equal(t, requestor.Success, v)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, v)
			assert.Equal(t, tc.verdict.Reason, reason[:len(tc.verdict.Reason)])
		})
	}
}

func TestAwaitDataVerifiesAgain(t *testing.T) {
	calls := 0
	app := &fakeApp{verify: func(context.Context, *sdk.Result[tparams, pparams]) (sdk.Verdict, error) {
		calls++
		if calls < 3 {
			return sdk.AwaitData("waiting for the neighbours"), nil
		}
		return sdk.Accept(), nil
	}}
	hs := newHarness(t, app)
	hs.create("T", `{"parts": 2}`)
	hs.next("T", "s", "n1")
	hs.put("T", "s", "x")
	for range 2 {
		v, reason := hs.verify("T", "s")
		assert.Equal(t, requestor.AwaitingData, v)
		assert.Equal(t, "waiting for the neighbours", reason)
		assert.False(t, hs.pending("T") && false)
	}
	// Still counted against its part: only part 1 is handed out.
	assert.Equal(t, 1, part(t, hs.next("T", "other", "n2")))
	hs.none("T", "more", "n3")
	v, _ := hs.verify("T", "s")
	assert.Equal(t, requestor.Success, v)
	assert.Equal(t, 3, calls)
}

func TestVerifyIdempotent(t *testing.T) {
	app := &fakeApp{}
	hs := newHarness(t, app)
	hs.create("T", `{"parts": 2}`)
	v1, r1 := hs.compute("T", "a", "n1", "A")
	app.verify = func(context.Context, *sdk.Result[tparams, pparams]) (sdk.Verdict, error) {
		return sdk.Reject("changed my mind"), nil
	}
	hs.next("T", "b", "n1")
	hs.put("T", "b", "B")
	v2, r2 := hs.verify("T", "b")
	require.Equal(t, requestor.Failure, v2)
	calls := app.verifies.Load()
	for round := range 2 {
		v, r := hs.verify("T", "a")
		assert.Equal(t, v1, v, "round %d", round)
		assert.Equal(t, r1, r)
		v, r = hs.verify("T", "b")
		assert.Equal(t, v2, v)
		assert.Equal(t, r2, r)
		assert.Equal(t, calls, app.verifies.Load(), "a final verdict does not run the app again")
		hs.restart()
	}
}

func TestAttemptsExhausted(t *testing.T) {
	app := &fakeApp{verify: func(_ context.Context, r *sdk.Result[tparams, pparams]) (sdk.Verdict, error) {
		return sdk.Reject("wrong colour"), nil
	}}
	hs := newHarness(t, app, sdk.WithMaxAttempts(2))
	hs.create("T", `{"parts": 2}`)
	assert.Equal(t, 0, part(t, hs.next("T", "a", "n1")))
	assert.Equal(t, 1, part(t, hs.next("T", "live", "n3")))
	hs.put("T", "a", "x")
	v, reason := hs.verify("T", "a")
	assert.Equal(t, requestor.Failure, v)
	assert.Equal(t, "wrong colour", reason)
	_, err := os.Stat(filepath.Join(hs.wd, "T", ".gtask", "status.json"))
	assert.ErrorIs(t, err, os.ErrNotExist, "no status while the task runs")
	v, reason = hs.compute("T", "b", "n2", "x")
	assert.Equal(t, requestor.Failure, v)
	assert.Equal(t, "wrong colour; part 0 failed 2 times; task failed", reason)

	assert.False(t, hs.pending("T"))
	_, err = hs.h.NextSubtask(hs.ctx, "T", "c", "n1")
	assert.Equal(t, codes.FailedPrecondition, code(err))
	assert.Equal(t, `task "T": task failed: part 0 failed 2 times; last: wrong colour`, msg(err))
	assert.ErrorIs(t, err, sdk.ErrTaskFailed)
	assert.Equal(t, sdk.Status{State: "failed", Reason: "part 0 failed 2 times; last: wrong colour"}, hs.status("T"))
	_, _, err = hs.h.Verify(hs.ctx, "T", "live")
	assert.ErrorIs(t, err, sdk.ErrTaskFailed)
	assert.Zero(t, app.merges.Load())
	// The same after a restart.
	hs.restart()
	assert.False(t, hs.pending("T"))
	v, reason = hs.verify("T", "b")
	assert.Equal(t, requestor.Failure, v)
	assert.Contains(t, reason, "task failed")
}

func TestMerge(t *testing.T) {
	var gotOutputs string
	var order []int
	app := &fakeApp{}
	app.merge = func(ctx context.Context, t *sdk.Task[tparams], rs []*sdk.Result[tparams, pparams]) error {
		gotOutputs = t.Dir.Outputs()
		order = nil
		for _, r := range rs {
			order = append(order, r.Part)
		}
		os.WriteFile(filepath.Join(t.Dir.Outputs(), "a.txt"), []byte("A"), 0o644)
		return os.WriteFile(filepath.Join(t.Dir.Outputs(), "b.txt"), []byte("B"), 0o644)
	}
	hs := newHarness(t, app)
	hs.create("T", `{"parts": 3}`)
	// Something the host or an earlier run left: not part of the result.
	require.NoError(t, os.WriteFile(filepath.Join(hs.wd, "T", "task_outputs", "stale.txt"), nil, 0o644))
	for _, s := range []string{"s0", "s1", "s2"} {
		hs.next("T", s, "n")
	}
	for _, s := range []string{"s2", "s0"} {
		hs.put("T", s, s)
		v, reason := hs.verify("T", s)
		assert.Equal(t, requestor.Success, v)
		assert.Equal(t, "accepted", reason)
	}
	assert.Zero(t, app.merges.Load(), "not before the last part")
	hs.put("T", "s1", "s1")
	v, reason := hs.verify("T", "s1")
	assert.Equal(t, requestor.Success, v)
	assert.Equal(t, "accepted; task finished", reason)
	assert.EqualValues(t, 1, app.merges.Load())
	assert.Equal(t, []int{0, 1, 2}, order, "results in part order")
	assert.NotEqual(t, filepath.Join(hs.wd, "T", "task_outputs"), gotOutputs, "Merge writes to staging")
	assert.Equal(t, map[string]string{"a.txt": "A", "b.txt": "B"}, hs.outputs("T"), "the result files and nothing else")
	assert.NoDirExists(t, filepath.Join(hs.wd, "T", ".gtask", "merge"))
	assert.Equal(t, sdk.Status{State: "finished"}, hs.status("T"))

	// Retries and a restart run no second merge.
	v, reason = hs.verify("T", "s1")
	assert.Equal(t, "accepted; task finished", reason)
	hs.restart()
	v2, reason2 := hs.verify("T", "s1")
	assert.Equal(t, v, v2)
	assert.Equal(t, reason, reason2)
	assert.EqualValues(t, 1, app.merges.Load())
	_, err := hs.h.NextSubtask(hs.ctx, "T", "x", "n")
	assert.Equal(t, codes.FailedPrecondition, code(err))
	assert.Equal(t, `task "T": task is finished`, msg(err))
	assert.False(t, hs.pending("T"))
	_, err = hs.h.DiscardSubtasks(hs.ctx, "T", []string{"s0"})
	assert.ErrorIs(t, err, sdk.ErrTaskFinished)
	require.NoError(t, hs.h.AbortTask(hs.ctx, "T"), "a no-op on a finished task")
	assert.Equal(t, sdk.Status{State: "finished"}, hs.status("T"))
}

func TestMergeFails(t *testing.T) {
	for _, panics := range []bool{false, true} {
		t.Run(fmt.Sprintf("panics=%v", panics), func(t *testing.T) {
			app := &fakeApp{merge: func(ctx context.Context, t *sdk.Task[tparams], rs []*sdk.Result[tparams, pparams]) error {
				os.WriteFile(filepath.Join(t.Dir.Outputs(), "half.txt"), nil, 0o644)
				if panics {
					panic("oops")
				}
				return errors.New("out of glue")
			}}
			hs := newHarness(t, app)
			hs.create("T", "")
			v, reason := hs.compute("T", "s", "n", "x")
			assert.Equal(t, requestor.Success, v, "the result stays accepted")
			assert.Contains(t, reason, "; task failed: merging the results: ")
			st := hs.status("T")
			assert.Equal(t, "failed", st.State)
			assert.Contains(t, st.Reason, "merging the results")
			assert.Empty(t, hs.outputs("T"), "nothing half-merged in task_outputs")
			_, err := hs.h.NextSubtask(hs.ctx, "T", "x", "n")
			assert.ErrorIs(t, err, sdk.ErrTaskFailed)
			assert.False(t, hs.pending("T"))
		})
	}
}

// TestMergeInterrupted stops the requestor while Merge runs: the task stays
// merging, and the next start merges again without CreateTask.
func TestMergeInterrupted(t *testing.T) {
	g := newGate()
	app := &fakeApp{}
	app.merge = func(ctx context.Context, t *sdk.Task[tparams], rs []*sdk.Result[tparams, pparams]) error {
		if app.merges.Load() == 1 {
			return g.wait(ctx) // the first merge never finishes
		}
		return os.WriteFile(filepath.Join(t.Dir.Outputs(), "done.txt"), []byte("ok"), 0o644)
	}
	hs := newHarness(t, app)
	hs.create("T", "")
	hs.next("T", "s", "n")
	hs.put("T", "s", "x")
	errc := make(chan error, 1)
	go func() { _, _, err := hs.h.Verify(hs.ctx, "T", "s"); errc <- err }()
	<-g.entered
	require.NoError(t, hs.h.Shutdown(hs.ctx))
	err := <-errc
	assert.Equal(t, codes.Canceled, code(err), "%v", err)
	_, err = sdk.ReadStatus(filepath.Join(hs.wd, "T"))
	assert.ErrorIs(t, err, os.ErrNotExist)

	hs.restart()
	assert.False(t, hs.pending("T")) // the first call opens the store and merges
	assert.EqualValues(t, 2, app.merges.Load())
	assert.Equal(t, map[string]string{"done.txt": "ok"}, hs.outputs("T"))
	v, reason := hs.verify("T", "s")
	assert.Equal(t, requestor.Success, v)
	assert.Equal(t, "accepted; task finished", reason)
}

func TestAbortTask(t *testing.T) {
	g := newGate()
	app := &fakeApp{verify: func(ctx context.Context, r *sdk.Result[tparams, pparams]) (sdk.Verdict, error) {
		if r.SubtaskID == "slow" {
			if err := g.wait(ctx); err != nil {
				return sdk.Verdict{}, err
			}
		}
		return sdk.Accept(), nil
	}}
	hs := newHarness(t, app)
	hs.create("T", `{"parts": 4}`)
	hs.compute("T", "done", "n1", "x")
	hs.next("T", "computing", "n1")
	hs.next("T", "slow", "n2")
	hs.put("T", "slow", "x")
	errc := make(chan error, 1)
	go func() { _, _, err := hs.h.Verify(hs.ctx, "T", "slow"); errc <- err }()
	<-g.entered

	require.NoError(t, hs.h.AbortTask(hs.ctx, "T"))
	err := <-errc
	assert.Equal(t, codes.Canceled, code(err), "the verification in flight is cancelled: %v", err)
	assert.Equal(t, sdk.Status{State: "aborted"}, hs.status("T"))

	for round := range 2 {
		assert.False(t, hs.pending("T"), "round %d", round)
		require.NoError(t, hs.h.AbortTask(hs.ctx, "T"), "again: a no-op")
		calls := map[string]error{}
		_, calls["NextSubtask"] = hs.h.NextSubtask(hs.ctx, "T", "new", "n3")
		_, _, calls["Verify done"] = hs.h.Verify(hs.ctx, "T", "done")
		_, _, calls["Verify computing"] = hs.h.Verify(hs.ctx, "T", "computing")
		_, calls["DiscardSubtasks"] = hs.h.DiscardSubtasks(hs.ctx, "T", []string{"done"})
		calls["AbortSubtask"] = hs.h.AbortSubtask(hs.ctx, "T", "computing")
		for name, err := range calls {
			assert.Equal(t, codes.FailedPrecondition, code(err), "%s: %v", name, err)
			assert.ErrorIs(t, err, sdk.ErrTaskAborted, name)
			assert.Equal(t, `task "T": task was aborted`, msg(err), name)
		}
		hs.restart()
	}
	assert.Zero(t, app.merges.Load())
}

func TestAbortSubtask(t *testing.T) {
	g := newGate()
	app := &fakeApp{verify: func(ctx context.Context, r *sdk.Result[tparams, pparams]) (sdk.Verdict, error) {
		if r.SubtaskID == "slow" {
			if err := g.wait(ctx); err != nil {
				return sdk.Verdict{}, err
			}
		}
		return sdk.Accept(), nil
	}}
	hs := newHarness(t, app)
	hs.create("T", `{"parts": 2}`)
	hs.next("T", "a", "n1")
	hs.next("T", "slow", "n2")
	assert.False(t, hs.pending("T"))

	require.NoError(t, hs.h.AbortSubtask(hs.ctx, "T", "a"))
	assert.True(t, hs.pending("T"), "its part is computable again")
	assert.Equal(t, 0, part(t, hs.next("T", "a2", "n1")))
	_, _, err := hs.h.Verify(hs.ctx, "T", "a")
	assert.Equal(t, codes.FailedPrecondition, code(err))
	assert.ErrorIs(t, err, sdk.ErrSubtaskAborted)
	require.NoError(t, hs.h.AbortSubtask(hs.ctx, "T", "a"), "again: a no-op")

	// Aborting a subtask being verified cancels the verification.
	hs.put("T", "slow", "x")
	errc := make(chan error, 1)
	go func() { _, _, err := hs.h.Verify(hs.ctx, "T", "slow"); errc <- err }()
	<-g.entered
	require.NoError(t, hs.h.AbortSubtask(hs.ctx, "T", "slow"))
	err = <-errc
	assert.Equal(t, codes.Canceled, code(err), "%v", err)
	assert.Equal(t, 1, part(t, hs.next("T", "b2", "n2")))

	// An accepted result cannot be aborted, only discarded.
	hs.put("T", "a2", "x")
	hs.verify("T", "a2")
	err = hs.h.AbortSubtask(hs.ctx, "T", "a2")
	assert.Equal(t, codes.FailedPrecondition, code(err))
	assert.ErrorIs(t, err, sdk.ErrWrongState)
}

func TestDiscardSubtasks(t *testing.T) {
	// Part 1 depends on 0, part 2 on 1; part 3 is on its own.
	app := &fakeApp{split: func(context.Context, *sdk.Task[tparams]) ([]sdk.Part[pparams], error) {
		return []sdk.Part[pparams]{{}, {DependsOn: []int{0}}, {DependsOn: []int{1}}, {}}, nil
	}}
	hs := newHarness(t, app)
	hs.create("U", "")
	assert.Equal(t, 0, part(t, hs.next("U", "p0", "n")))
	assert.Equal(t, 3, part(t, hs.next("U", "p3", "n")))
	hs.none("U", "x", "n") // parts 1 and 2 wait for their dependencies
	hs.put("U", "p0", "x")
	hs.verify("U", "p0")
	assert.Equal(t, 1, part(t, hs.next("U", "p1", "n")))
	for _, s := range []string{"p1", "p3"} {
		hs.put("U", s, "x")
		hs.verify("U", s)
	}
	assert.Equal(t, 2, part(t, hs.next("U", "p2", "n"))) // computing from part 1's result
	ids, err := hs.h.DiscardSubtasks(hs.ctx, "U", []string{"p1", "unknown"})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"p1", "p2"}, ids, "p1, and p2 made from it; not p0 or p3")
	_, _, err = hs.h.Verify(hs.ctx, "U", "p2")
	assert.ErrorIs(t, err, sdk.ErrSubtaskAborted)
	v, _ := hs.verify("U", "p0")
	assert.Equal(t, requestor.Success, v, "p0 is untouched")
	assert.Equal(t, 1, part(t, hs.next("U", "p1b", "n")))
	hs.none("U", "x", "n")
	hs.put("U", "p1b", "y")
	hs.verify("U", "p1b")
	assert.Equal(t, 2, part(t, hs.next("U", "p2b", "n")))
	hs.put("U", "p2b", "z")
	hs.verify("U", "p2b")
	assert.Equal(t, map[string]string{"merged.txt": "0:x\n1:y\n2:z\n3:x\n"}, hs.outputs("U"))
	ids, err = hs.h.DiscardSubtasks(hs.ctx, "U", nil)
	assert.ErrorIs(t, err, sdk.ErrTaskFinished)
	assert.Nil(t, ids)
}

func TestRedundancy(t *testing.T) {
	t.Run("agree", func(t *testing.T) {
		hs := newHarness(t, &fakeApp{}, sdk.WithRedundancy(2))
		hs.create("T", "")
		hs.next("T", "a", "n1")
		hs.none("T", "x", "n1") // a node never gets two replicas of a part
		hs.next("T", "b", "n2")
		hs.put("T", "a", "same")
		hs.put("T", "b", "same")
		v, reason := hs.verify("T", "a")
		assert.Equal(t, requestor.AwaitingData, v)
		assert.Contains(t, reason, "1 of 2")
		v, reason = hs.verify("T", "b")
		assert.Equal(t, requestor.Success, v)
		assert.Contains(t, reason, "2 of 2 results of part 0 agree")
		assert.Contains(t, reason, "task finished")
		v, _ = hs.verify("T", "a")
		assert.Equal(t, requestor.Success, v)
	})
	t.Run("disagree, then the majority wins", func(t *testing.T) {
		hs := newHarness(t, &fakeApp{}, sdk.WithRedundancy(2))
		hs.create("T", "")
		hs.next("T", "a", "n1")
		hs.next("T", "b", "n2")
		hs.put("T", "a", "right")
		hs.put("T", "b", "wrong")
		hs.verify("T", "a")
		v, _ := hs.verify("T", "b")
		assert.Equal(t, requestor.Inconclusive, v)
		assert.True(t, hs.pending("T"), "one more replica")
		hs.none("T", "x", "n1")
		hs.none("T", "y", "n2")
		v, _ = hs.compute("T", "c", "n3", "right")
		assert.Equal(t, requestor.Success, v)
		v, reason := hs.verify("T", "b")
		assert.Equal(t, requestor.Failure, v)
		assert.Contains(t, reason, "disagrees")
		assert.Equal(t, map[string]string{"merged.txt": "0:right\n"}, hs.outputs("T"))
	})
	t.Run("the app's check comes first", func(t *testing.T) {
		app := &fakeApp{verify: func(_ context.Context, r *sdk.Result[tparams, pparams]) (sdk.Verdict, error) {
			b, _ := os.ReadFile(r.File)
			if string(b) == "garbage" {
				return sdk.Reject("garbage"), nil
			}
			return sdk.Accept(), nil
		}}
		hs := newHarness(t, app, sdk.WithRedundancy(2))
		hs.create("T", "")
		hs.next("T", "a", "n1")
		hs.next("T", "b", "n2")
		hs.put("T", "a", "garbage")
		hs.put("T", "b", "good")
		v, _ := hs.verify("T", "a")
		assert.Equal(t, requestor.Failure, v)
		v, _ = hs.verify("T", "b")
		assert.Equal(t, requestor.AwaitingData, v)
		v, _ = hs.compute("T", "c", "n1", "good")
		assert.Equal(t, requestor.Success, v)
	})
}

// TestManyTasksAtOnce runs many tasks through one Handler concurrently,
// each with several workers, under -race: nothing is shared between tasks.
func TestManyTasksAtOnce(t *testing.T) {
	app := &fakeApp{}
	hs := newHarness(t, app)
	const tasks, parts, workers = 6, 20, 3
	var wg sync.WaitGroup
	errs := make(chan error, tasks*workers)
	for ti := range tasks {
		task := fmt.Sprint("task", ti)
		wg.Go(func() {
			if _, err := hs.h.CreateTask(hs.ctx, task, 0, json.RawMessage(fmt.Sprintf(`{"parts": %d}`, parts))); err != nil {
				errs <- err
				return
			}
			var inner sync.WaitGroup
			for w := range workers {
				inner.Go(func() {
					for i := 0; ; i++ {
						sub := fmt.Sprintf("w%d-%d", w, i)
						st, err := hs.h.NextSubtask(hs.ctx, task, sub, fmt.Sprint("node", w))
						if err != nil {
							if code(err) != codes.FailedPrecondition {
								errs <- err
							}
							return
						}
						if st == nil {
							ok, err := hs.h.HasPendingSubtasks(hs.ctx, task)
							if err != nil {
								errs <- err
								return
							}
							if !ok {
								if _, err := sdk.ReadStatus(filepath.Join(hs.wd, task)); err == nil {
									return
								}
							}
							continue
						}
						dir := filepath.Join(hs.wd, task, "subtask_outputs", sub)
						os.MkdirAll(dir, 0o755)
						os.WriteFile(filepath.Join(dir, "r"), []byte(fmt.Sprint(part(t, st))), 0o644)
						if _, _, err := hs.h.Verify(hs.ctx, task, sub); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			inner.Wait()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var want string
	for i := range parts {
		want += fmt.Sprintf("%d:%d\n", i, i)
	}
	for ti := range tasks {
		task := fmt.Sprint("task", ti)
		assert.Equal(t, map[string]string{"merged.txt": want}, hs.outputs(task), task)
		assert.FileExists(t, filepath.Join(hs.wd, task, ".gtask", "state.db"))
	}
	assert.EqualValues(t, tasks, app.merges.Load())
}

// TestRestart closes the Handler mid-task and goes on with a new one over
// the same work dir, without CreateTask: no verified result is lost.
func TestRestart(t *testing.T) {
	app := &fakeApp{}
	hs := newHarness(t, app, sdk.WithMaxAttempts(5))
	hs.create("T", `{"parts": 5}`)
	hs.create("U", `{"parts": 1}`)
	hs.compute("T", "s0", "n", "zero")
	hs.next("T", "s1", "n") // computing at the "crash"
	hs.next("T", "s2", "n")
	hs.put("T", "s2", "two")
	app.verify = func(context.Context, *sdk.Result[tparams, pparams]) (sdk.Verdict, error) {
		return sdk.AwaitData("later"), nil
	}
	v, _ := hs.verify("T", "s2")
	require.Equal(t, requestor.AwaitingData, v)
	app.verify = nil
	hs.next("T", "bad", "n") // part 3, aborted
	require.NoError(t, hs.h.AbortSubtask(hs.ctx, "T", "bad"))

	hs.restart()
	v, reason := hs.verify("T", "s0")
	assert.Equal(t, requestor.Success, v)
	assert.Equal(t, "accepted", reason)
	assert.True(t, hs.pending("T"))
	// Part 1 (detached) and part 3 (aborted) come back first, then part 4.
	got := []int{part(t, hs.next("T", "r1", "n")), part(t, hs.next("T", "r2", "n")), part(t, hs.next("T", "r3", "n"))}
	assert.Equal(t, []int{1, 3, 4}, got)
	hs.none("T", "r4", "n")
	// The host that survived the crash still delivers s1: it counts.
	hs.put("T", "s1", "one")
	v, _ = hs.verify("T", "s1")
	assert.Equal(t, requestor.Success, v)
	for sub, content := range map[string]string{"r1": "one-again", "r2": "three", "r3": "four"} {
		hs.put("T", sub, content)
		hs.verify("T", sub)
	}
	v, reason = hs.verify("T", "s2")
	assert.Equal(t, requestor.Success, v)
	assert.Contains(t, reason, "task finished")
	assert.Equal(t, map[string]string{"merged.txt": "0:zero\n1:one\n2:two\n3:three\n4:four\n"}, hs.outputs("T"))
	// U was never touched after the restart, and is still there.
	assert.True(t, hs.pending("U"))
}

func TestShutdown(t *testing.T) {
	hs := newHarness(t, &fakeApp{})
	hs.create("T", "")
	require.NoError(t, hs.h.Shutdown(hs.ctx))
	require.NoError(t, hs.h.Shutdown(hs.ctx), "twice is fine")
	_, err := hs.h.HasPendingSubtasks(hs.ctx, "T")
	assert.Equal(t, codes.Unavailable, code(err))
}

func TestRunBenchmark(t *testing.T) {
	hs := newHarness(t, &fakeApp{})
	_, err := hs.h.RunBenchmark(hs.ctx)
	assert.Equal(t, codes.Unimplemented, code(err))
	assert.ErrorIs(t, err, sdk.ErrNoBenchmark)
	b := sdk.NewRequestor[tparams, pparams](benchmarker{fakeApp: &fakeApp{}}, t.TempDir(), nil)
	defer b.Shutdown(hs.ctx)
	score, err := b.RunBenchmark(hs.ctx)
	require.NoError(t, err)
	assert.Equal(t, 42.0, score)
}

type benchmarker struct{ *fakeApp }

func (benchmarker) RunBenchmark(context.Context) (float64, error) { return 42, nil }
