package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
)

func TestRunFinishes(t *testing.T) {
	l := sqLauncher(&sqApp{})
	evs := &eventLog{}
	cfg := config(t, l, evs, 5)
	offset := filepath.Join(t.TempDir(), "offset.txt")
	require.NoError(t, os.WriteFile(offset, []byte("100"), 0o644))
	cfg.Inputs = []string{offset}

	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(5, 100), readOutput(t, res))
	assert.Empty(t, res.Reason)
	assert.Equal(t, filepath.Join(cfg.WorkDir, "requestor", "t1", "task_outputs"), res.OutputsDir)
	assert.Equal(t, filepath.Join(cfg.WorkDir, "events.jsonl"), res.EventsPath)

	c := res.Counts
	assert.Equal(t, 5, c.Parts)
	assert.Equal(t, 5, c.Done)
	assert.Equal(t, 5, c.Assigned)
	assert.Equal(t, 5, c.Computed)
	assert.Equal(t, 5, c.Accepted)
	assert.Zero(t, c.Failed)
	assert.Zero(t, c.Retried)

	created := evs.ofKind(host.EventTaskCreated)
	require.Len(t, created, 1)
	assert.Equal(t, "docker_cpu", created[0].Env)
	assert.Equal(t, 5, created[0].Parts)
	assigned := evs.ofKind(host.EventSubtaskAssigned)
	require.Len(t, assigned, 5)
	ids := map[string]bool{}
	for _, ev := range assigned {
		ids[ev.Subtask] = true
		require.NotNil(t, ev.Part)
		require.NotNil(t, ev.Slot)
		assert.Equal(t, fmt.Sprintf("node-%d", *ev.Slot), ev.Node, "no node failed, so every slot keeps its node")
		assert.Equal(t, 1, ev.Attempt)
	}
	assert.Len(t, ids, 5, "a fresh subtask id every time")
	for _, ev := range evs.ofKind(host.EventSubtaskComputed) {
		assert.Equal(t, int64(len("100\n")), ev.Bytes, "every square plus 100 has three digits")
		assert.Positive(t, ev.Took)
	}
	last := evs.all()[len(evs.all())-1]
	assert.Equal(t, host.EventTaskFinished, last.Kind)
	assert.Equal(t, host.Progress{Parts: 5, Done: 5}, last.Progress)
	assert.Equal(t, host.Finished, last.Summary.Outcome)
	assert.Equal(t, res.Summary().String(), last.Summary.String())
	assert.Contains(t, last.Summary.String(), "finished in ")
	assert.Contains(t, last.Summary.String(), "5/5 parts")

	// The layout of the work dir.
	assert.FileExists(t, filepath.Join(cfg.WorkDir, "logs", "requestor.log"))
	for id := range ids {
		assert.FileExists(t, filepath.Join(cfg.WorkDir, "logs", "provider-"+id+".log"))
		assert.NoDirExists(t, filepath.Join(cfg.WorkDir, "providers", id), "removed once the attempt is over")
		assert.FileExists(t, filepath.Join(res.TaskDir, "subtask_outputs", id, "square.txt"))
	}
	b, err := os.ReadFile(filepath.Join(res.TaskDir, "task_inputs", "offset.txt"))
	require.NoError(t, err)
	assert.Equal(t, "100", string(b))
}

func TestRunDefaults(t *testing.T) {
	l := sqLauncher(&sqApp{})
	evs := &eventLog{}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	workDir := t.TempDir()
	res, err := host.Run(ctx, host.RunConfig{Launcher: l, WorkDir: workDir, OnEvent: evs.add})
	require.NoError(t, err)
	l.requireAllGone(t)
	assert.True(t, strings.HasPrefix(res.TaskID, "task-"), res.TaskID)
	assert.Equal(t, wantSquares(1, 0), readOutput(t, res))

	_, err = host.Run(ctx, host.RunConfig{})
	assert.ErrorContains(t, err, "Launcher is required")
	_, err = host.Run(ctx, host.RunConfig{Launcher: l, TaskID: "../x"})
	assert.ErrorContains(t, err, "TaskID")
	_, err = host.Run(ctx, host.RunConfig{Launcher: l, Chaos: &host.Chaos{Crash: 2}})
	assert.ErrorContains(t, err, "crash rate")
}

// TestRunHostileOutputs gives the first attempt a provider that answers an
// output the host must not copy: each is a failed attempt with its reason
// in the events, and the task still ends right, whether the host calls the
// provider over gRPC or in process. The provider is a raw server, with no
// check of its own, so that the host's checks are what is tested.
func TestRunHostileOutputs(t *testing.T) {
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "secret.txt")
	require.NoError(t, os.WriteFile(secret, []byte("the host's secret\n"), 0o644))

	tests := []struct {
		name string
		// answer prepares the provider's task dir and returns the path
		// the provider answers; honest is the honest answer.
		answer func(t *testing.T, dir, subtask, honest string) string
		// reason is the compute_failed event's reason.
		reason func(subtask string) string
	}{
		{
			name:   "parent path",
			answer: func(*testing.T, string, string, string) string { return "../../etc/passwd" },
			reason: func(string) string {
				return `output path "../../etc/passwd" leads outside the provider's task dir`
			},
		},
		{
			name:   "absolute path",
			answer: func(*testing.T, string, string, string) string { return secret },
			reason: func(string) string {
				return fmt.Sprintf("output path %q is absolute; it must be relative to the provider's task dir", secret)
			},
		},
		{
			name: "symlink to a file outside",
			answer: func(t *testing.T, dir, subtask, _ string) string {
				require.NoError(t, os.Symlink(secret, filepath.Join(dir, subtask, "link.txt")))
				return subtask + "/link.txt"
			},
			reason: func(subtask string) string {
				return fmt.Sprintf("output %q is a symbolic link, not a regular file", subtask+"/link.txt")
			},
		},
		{
			name: "symlink to a file inside",
			answer: func(t *testing.T, dir, subtask, honest string) string {
				require.NoError(t, os.Symlink(filepath.Join(dir, honest), filepath.Join(dir, subtask, "link.txt")))
				return subtask + "/link.txt"
			},
			reason: func(subtask string) string {
				return fmt.Sprintf("output %q is a symbolic link, not a regular file", subtask+"/link.txt")
			},
		},
		{
			name: "a directory on the way links outside",
			answer: func(t *testing.T, dir, subtask, _ string) string {
				require.NoError(t, os.Symlink(secretDir, filepath.Join(dir, "out")))
				return "out/secret.txt"
			},
			reason: func(string) string {
				return `output "out/secret.txt" cannot be read inside the provider's task dir: statat: path escapes from parent`
			},
		},
		{
			name:   "a directory",
			answer: func(_ *testing.T, _, subtask, _ string) string { return subtask },
			reason: func(subtask string) string {
				return fmt.Sprintf("output %q is a directory, not a regular file", subtask)
			},
		},
		{
			name: "a huge file",
			answer: func(t *testing.T, dir, subtask, _ string) string {
				require.NoError(t, os.WriteFile(filepath.Join(dir, subtask, "huge.bin"), make([]byte, 5000), 0o644))
				return subtask + "/huge.bin"
			},
			reason: func(subtask string) string {
				return fmt.Sprintf("output %q is 5000 bytes, over the limit of 4096 bytes", subtask+"/huge.bin")
			},
		},
		{
			name:   "no file",
			answer: func(_ *testing.T, _, subtask, _ string) string { return subtask + "/nothing.txt" },
			reason: func(subtask string) string {
				return fmt.Sprintf("output %q does not exist in the provider's task dir", subtask+"/nothing.txt")
			},
		},
		{
			name:   "no path",
			answer: func(*testing.T, string, string, string) string { return "" },
			reason: func(string) string { return "the provider named no output file" },
		},
	}
	for _, tc := range tests {
		for _, p := range paths {
			t.Run(tc.name+"/"+p.name, func(t *testing.T) {
				testHostileOutput(t, p.direct, tc.answer, tc.reason)
			})
		}
	}
}

func testHostileOutput(t *testing.T, direct bool,
	answer func(t *testing.T, dir, subtask, honest string) string, reason func(subtask string) string) {
	t.Helper()
	app := &sqApp{}
	l := track(&memLauncher{
		direct: direct,
		newRequestor: func(workDir string, log *slog.Logger) requestor.Handler {
			return sdk.NewRequestor(app, workDir, log)
		},
		newProvider: func(workDir string, n int, log *slog.Logger) any {
			h := sdk.NewProvider(app, workDir, log)
			return &rewriter{h: h, workDir: workDir, t: t,
				rewrite: func(t *testing.T, dir, subtask, rel string) string {
					if n != 1 {
						return rel
					}
					return answer(t, dir, subtask, rel)
				}}
		},
	})
	evs := &eventLog{}
	cfg := config(t, l, evs, 2)
	cfg.Providers = 1
	cfg.MaxOutputSize = 4096
	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(2, 0), readOutput(t, res))

	failed := evs.ofKind(host.EventComputeFailed)
	require.Len(t, failed, 1)
	ev := failed[0]
	assert.Equal(t, host.FailBadOutput, ev.Fail)
	assert.Equal(t, reason(ev.Subtask), ev.Reason)
	assert.Equal(t, 0, *ev.Part)
	assert.Equal(t, 1, res.Counts.FailedBy[host.FailBadOutput])
	assert.Equal(t, 1, res.Counts.Retried)

	banned := evs.ofKind(host.EventNodeBanned)
	require.Len(t, banned, 1)
	assert.Equal(t, "node-0", banned[0].Node)
	assert.Equal(t, "node-1", banned[0].NewNode)
	aborted := evs.ofKind(host.EventSubtaskAborted)
	require.Len(t, aborted, 1)
	assert.Equal(t, ev.Subtask, aborted[0].Subtask)

	// Nothing from outside reached the requestor's side.
	entries, err := os.ReadDir(filepath.Join(res.TaskDir, "subtask_outputs", ev.Subtask))
	if err == nil {
		assert.Empty(t, entries)
	}
	filepath.WalkDir(res.TaskDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			assert.NotContains(t, string(b), "the host's secret", p)
		}
		return nil
	})
}

func TestRunComputeError(t *testing.T) {
	var f firsts
	app := &sqApp{compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
		if s.Part == 1 && f.first(1) {
			return "", errors.New("out of unobtainium")
		}
		return honest()
	}}
	l := sqLauncher(app)
	evs := &eventLog{}
	res, err := runTask(t, l, config(t, l, evs, 3), evs)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(3, 0), readOutput(t, res))

	failed := evs.ofKind(host.EventComputeFailed)
	require.Len(t, failed, 1)
	assert.Equal(t, host.FailError, failed[0].Fail)
	assert.Equal(t, "Internal", failed[0].Code)
	assert.Equal(t, "Compute answered Internal: computing part 1: out of unobtainium", failed[0].Reason)
	assert.Equal(t, 1, res.Counts.Failed)
	assert.Equal(t, 1, res.Counts.Retried)
}

// TestRunHangRetriedElsewhere: a provider that does not answer within
// SubtaskTimeout is killed, and its part computed on another node.
func TestRunHangRetriedElsewhere(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) { testRunHangRetriedElsewhere(t, p.direct) })
	}
}

func testRunHangRetriedElsewhere(t *testing.T, direct bool) {
	var f firsts
	app := &sqApp{compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
		if s.Part == 0 && f.first(0) {
			<-ctx.Done() // hangs until the host kills the provider
			return "", ctx.Err()
		}
		return honest()
	}}
	l := sqLauncherOn(direct, app)
	evs := &eventLog{}
	cfg := config(t, l, evs, 2)
	cfg.SubtaskTimeout = 3 * time.Second
	cfg.Backups.Off = true // a backup would beat the timeout (TestRunBackup*)
	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(2, 0), readOutput(t, res))

	failed := evs.ofKind(host.EventComputeFailed)
	require.Len(t, failed, 1)
	assert.Equal(t, host.FailTimeout, failed[0].Fail)
	assert.Equal(t, "no answer within 3s (SubtaskTimeout)", failed[0].Reason)
	var again []host.Event
	for _, ev := range evs.ofKind(host.EventSubtaskAssigned) {
		if *ev.Part == 0 {
			again = append(again, ev)
		}
	}
	require.Len(t, again, 2)
	assert.NotEqual(t, again[0].Node, again[1].Node, "retried on another node")
	assert.Equal(t, 2, again[1].Attempt)
}

func TestRunWrongOutputRejected(t *testing.T) {
	var f firsts
	app := &sqApp{compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
		if s.Part == 2 && f.first(2) {
			out, err := s.OutputPath("square.txt")
			if err != nil {
				return "", err
			}
			return out, os.WriteFile(out, []byte("5\n"), 0o644)
		}
		return honest()
	}}
	l := sqLauncher(app)
	evs := &eventLog{}
	res, err := runTask(t, l, config(t, l, evs, 4), evs)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(4, 0), readOutput(t, res))

	var rejected host.Event
	for _, ev := range evs.ofKind(host.EventSubtaskVerified) {
		if ev.Verdict == "FAILURE" {
			rejected = ev
		}
	}
	require.NotEmpty(t, rejected.Subtask)
	assert.Equal(t, `part 2: got "5\n", want "4\n"`, rejected.Reason)
	// The rejected node is banned even when its slot went on as another
	// node before the verdict came (the app, which records the failure
	// before it answers, had nothing more for it: node_replaced).
	banned := evs.ofKind(host.EventNodeBanned)
	require.Len(t, banned, 1)
	assert.Equal(t, rejected.Node, banned[0].Node)
	if banned[0].NewNode == "" {
		replaced := false
		for _, ev := range evs.ofKind(host.EventNodeReplaced) {
			replaced = replaced || (ev.Node == rejected.Node && ev.Seq < banned[0].Seq)
		}
		assert.True(t, replaced, "a banned node's slot keeps its node only when it went on as another before")
	}
	for _, ev := range evs.ofKind(host.EventSubtaskAssigned) {
		if ev.Seq > banned[0].Seq {
			assert.NotEqual(t, rejected.Node, ev.Node, "a banned node gets no more of the task")
		}
	}
	assert.Equal(t, 1, res.Counts.Rejected)
	assert.Equal(t, 1, res.Counts.FailedBy[host.FailRejected])
	assert.Equal(t, 1, res.Counts.Banned)
	assert.Equal(t, 5, res.Counts.Assigned)
}

func TestRunRedundancy(t *testing.T) {
	for _, providers := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("%d providers", providers), func(t *testing.T) {
			l := sqLauncher(&sqApp{}, sdk.WithRedundancy(2))
			evs := &eventLog{}
			cfg := config(t, l, evs, 3)
			cfg.Providers = providers
			res, err := runTask(t, l, cfg, evs)
			require.NoError(t, err)
			assert.Equal(t, wantSquares(3, 0), readOutput(t, res))
			assert.Equal(t, 3, res.Counts.Done)
			// The first replica of a part awaits the second, which is
			// accepted; the first is accepted too when verified again, unless
			// the task has finished before.
			assert.GreaterOrEqual(t, res.Counts.Accepted, 3)
			assert.GreaterOrEqual(t, res.Counts.AwaitingData, 3)
			assert.Zero(t, res.Counts.Failed)
			// Two replicas of a part are computed on two nodes.
			nodes := map[int]map[string]bool{}
			for _, ev := range evs.ofKind(host.EventSubtaskAssigned) {
				if nodes[*ev.Part] == nil {
					nodes[*ev.Part] = map[string]bool{}
				}
				nodes[*ev.Part][ev.Node] = true
			}
			for part, ns := range nodes {
				assert.Len(t, ns, 2, "part %d", part)
			}
		})
	}
}

// TestRunAwaitingData: part 0's result can be judged only once part 1's is
// accepted; it is verified again after the next verification.
//
// Part 1 is computed only once the run has recorded part 0's AWAITING_DATA:
// otherwise the two Verify calls may run at once and answer in either
// order (part 0 may even be judged after part 1 is accepted, and never
// await data), which the runner does not order and the test must not
// assume. So the run's verdicts come in one order: part 0 awaits data, part
// 1 is accepted, and that verification makes part 0 verified again.
func TestRunAwaitingData(t *testing.T) {
	var accepted1 atomic.Bool
	awaited := make(chan struct{}) // closed once part 0's AWAITING_DATA is recorded
	app := &sqApp{
		compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
			if s.Part == 1 {
				select {
				case <-awaited:
				case <-ctx.Done():
					return "", ctx.Err()
				}
			}
			return honest()
		},
		verify: func(ctx context.Context, r *sdk.Result[sqParams, sqPart], check func() (sdk.Verdict, error)) (sdk.Verdict, error) {
			if r.Part == 0 && !accepted1.Load() {
				return sdk.AwaitData("waiting for part 1"), nil
			}
			v, err := check()
			if r.Part == 1 && err == nil && v.Result == requestor.Success {
				accepted1.Store(true)
			}
			return v, err
		},
	}
	l := sqLauncher(app)
	evs := &eventLog{}
	cfg := config(t, l, evs, 2)
	cfg.Providers = 1
	var once sync.Once
	cfg.OnEvent = func(ev host.Event) {
		evs.add(ev)
		if ev.Kind == host.EventSubtaskVerified && ev.Part != nil && *ev.Part == 0 && ev.Verdict == "AWAITING_DATA" {
			once.Do(func() { close(awaited) })
		}
	}
	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	assert.Equal(t, host.Finished, res.Outcome)
	assert.Equal(t, wantSquares(2, 0), readOutput(t, res))

	var verdicts []string
	for _, ev := range evs.ofKind(host.EventSubtaskVerified) {
		verdicts = append(verdicts, fmt.Sprintf("%d %s again=%v", *ev.Part, ev.Verdict, ev.Again))
	}
	assert.Equal(t, []string{"0 AWAITING_DATA again=false", "1 SUCCESS again=false", "0 SUCCESS again=true"}, verdicts)
	assert.Equal(t, 2, res.Counts.Done)
	assert.Equal(t, 2, res.Counts.Accepted)
	assert.Equal(t, 1, res.Counts.AwaitingData)
	assert.Zero(t, res.Counts.Failed)
}

func TestRunVerifyErrorRetried(t *testing.T) {
	var fails atomic.Int32
	app := &sqApp{verify: func(ctx context.Context, r *sdk.Result[sqParams, sqPart], check func() (sdk.Verdict, error)) (sdk.Verdict, error) {
		if r.Part == 0 && fails.Add(1) <= 2 {
			return sdk.Verdict{}, errors.New("the checker's disk is full")
		}
		return check()
	}}
	l := sqLauncher(app)
	evs := &eventLog{}
	res, err := runTask(t, l, config(t, l, evs, 2), evs)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(2, 0), readOutput(t, res))
	verrs := evs.ofKind(host.EventVerifyError)
	require.Len(t, verrs, 2)
	assert.Equal(t, 1, verrs[0].Try)
	assert.Equal(t, 2, verrs[1].Try)
	assert.Equal(t, "Internal", verrs[0].Code)
	assert.Contains(t, verrs[0].Reason, "the checker's disk is full")
	assert.Equal(t, 2, res.Counts.VerifyErrors)
	assert.Zero(t, res.Counts.Failed)
}

func TestRunVerifyErrorGivesUp(t *testing.T) {
	var fails atomic.Int32
	app := &sqApp{verify: func(ctx context.Context, r *sdk.Result[sqParams, sqPart], check func() (sdk.Verdict, error)) (sdk.Verdict, error) {
		if r.Part == 0 && fails.Add(1) <= 2 {
			return sdk.Verdict{}, errors.New("flaky checker")
		}
		return check()
	}}
	l := sqLauncher(app)
	evs := &eventLog{}
	cfg := config(t, l, evs, 2)
	cfg.VerifyTries = 2
	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(2, 0), readOutput(t, res))
	assert.Len(t, evs.ofKind(host.EventVerifyError), 2)
	require.Len(t, evs.ofKind(host.EventSubtaskAborted), 1)
	assert.Equal(t, 1, res.Counts.FailedBy[host.FailVerifyError])
}

func TestRunAppFails(t *testing.T) {
	app := &sqApp{compute: func(context.Context, *sdk.Subtask[sqPart], func() (string, error)) (string, error) {
		return "", errors.New("always broken")
	}}
	l := sqLauncher(app)
	evs := &eventLog{}
	res, err := runTask(t, l, config(t, l, evs, 2), evs)
	require.NoError(t, err, "a failed task is no error")
	assert.Equal(t, host.Failed, res.Outcome)
	assert.Regexp(t, `^part \d failed 3 times; last: aborted`, res.Reason)
	assert.Empty(t, res.Outputs)
	last := evs.all()[len(evs.all())-1]
	assert.Equal(t, host.EventTaskFailed, last.Kind)
	assert.Equal(t, res.Reason, last.Reason)
	st, err := sdk.ReadStatus(res.TaskDir)
	require.NoError(t, err)
	assert.Equal(t, "failed", st.State)
}

func TestRunCreateTaskRefused(t *testing.T) {
	l := sqLauncher(&sqApp{})
	evs := &eventLog{}
	cfg := config(t, l, evs, 2)
	cfg.Params = json.RawMessage(`{"prats": 2}`)
	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	assert.Equal(t, host.Failed, res.Outcome)
	assert.Equal(t, `CreateTask refused the task (InvalidArgument): invalid parameters: task_params_json: unknown field "prats"`, res.Reason)
	assert.Empty(t, evs.ofKind(host.EventTaskCreated))
}

// TestRunMaxAttempts: the host's own bound aborts a task whose app would
// go on.
func TestRunMaxAttempts(t *testing.T) {
	app := &sqApp{compute: func(context.Context, *sdk.Subtask[sqPart], func() (string, error)) (string, error) {
		return "", errors.New("always broken")
	}}
	l := sqLauncher(app, sdk.WithMaxAttempts(100))
	evs := &eventLog{}
	cfg := config(t, l, evs, 3)
	cfg.MaxAttempts = 4
	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	assert.Equal(t, host.Aborted, res.Outcome)
	assert.Equal(t, "4 failed attempts, the most the task may have (MaxAttempts)", res.Reason)
	st, err := sdk.ReadStatus(res.TaskDir)
	require.NoError(t, err)
	assert.Equal(t, "aborted", st.State, "AbortTask was sent")
}

func TestRunTimeout(t *testing.T) {
	app := &sqApp{compute: func(ctx context.Context, _ *sdk.Subtask[sqPart], _ func() (string, error)) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	}}
	l := sqLauncher(app)
	evs := &eventLog{}
	cfg := config(t, l, evs, 3)
	cfg.Timeout = time.Second
	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	assert.Equal(t, host.Aborted, res.Outcome)
	assert.Equal(t, "the task's time limit (Timeout) of 1s passed", res.Reason)
	st, err := sdk.ReadStatus(res.TaskDir)
	require.NoError(t, err)
	assert.Equal(t, "aborted", st.State)
}

// TestRunCancel: the end of ctx aborts the task, stops everything and is
// Run's error.
func TestRunCancel(t *testing.T) {
	app := &sqApp{compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
		if s.Part == 0 {
			return honest()
		}
		<-ctx.Done()
		return "", ctx.Err()
	}}
	l := sqLauncher(app)
	evs := &eventLog{}
	cfg := config(t, l, evs, 4)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var once sync.Once
	cfg.OnEvent = func(ev host.Event) {
		evs.add(ev)
		if ev.Kind == host.EventSubtaskVerified {
			once.Do(cancel)
		}
	}
	res, err := host.Run(ctx, cfg)
	require.ErrorIs(t, err, context.Canceled)
	l.requireAllGone(t)
	require.NotNil(t, res)
	assert.Equal(t, host.Aborted, res.Outcome)
	checkEventsFile(t, res.EventsPath, evs.all())
	st, err := sdk.ReadStatus(res.TaskDir)
	require.NoError(t, err)
	assert.Equal(t, "aborted", st.State, "AbortTask was sent")
	last := evs.all()[len(evs.all())-1]
	assert.Equal(t, host.EventTaskAborted, last.Kind)
	assert.Equal(t, 0, last.Progress.Computing)
}

// TestRunRequestorRestart: a requestor that dies is started again over the
// same work dir, and the task goes on from its stored state.
func TestRunRequestorRestart(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) { testRunRequestorRestart(t, p.direct) })
	}
}

func testRunRequestorRestart(t *testing.T, direct bool) {
	l := sqLauncherOn(direct, &sqApp{})
	evs := &eventLog{}
	cfg := config(t, l, evs, 4)
	cfg.Providers = 1
	var once sync.Once
	cfg.OnEvent = func(ev host.Event) {
		evs.add(ev)
		if ev.Kind == host.EventSubtaskVerified {
			once.Do(func() { l.requestor(0).Kill() })
		}
	}
	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(4, 0), readOutput(t, res))
	assert.Equal(t, 1, res.Counts.RequestorRestarts)
	require.Len(t, evs.ofKind(host.EventRequestorDied), 1)
	started := evs.ofKind(host.EventRequestorStarted)
	require.Len(t, started, 2)
	assert.Equal(t, 2, started[1].Attempt)
}

func TestRunRequestorDiesForGood(t *testing.T) {
	l := sqLauncher(&sqApp{})
	evs := &eventLog{}
	cfg := config(t, l, evs, 4)
	cfg.Providers = 1
	cfg.RequestorRestarts = -1
	var once sync.Once
	cfg.OnEvent = func(ev host.Event) {
		evs.add(ev)
		if ev.Kind == host.EventSubtaskVerified {
			once.Do(func() { l.requestor(0).Kill() })
		}
	}
	res, err := runTask(t, l, cfg, evs)
	require.ErrorIs(t, err, host.ErrRequestorDied)
	require.NotNil(t, res)
	assert.Equal(t, host.Aborted, res.Outcome)
}

// TestRunNotGtask drives an app that is no gtask app: no task.json, no
// status.json; the task ends when nothing is pending and task_outputs holds
// its result.
func TestRunNotGtask(t *testing.T) {
	app := &sqApp{}
	roles := sqRoles(app)
	roles.Requestor = func(workDir string, log *slog.Logger) (requestor.Handler, error) {
		return &bareRequestor{Handler: sdk.NewRequestor(app, workDir, log), workDir: workDir}, nil
	}
	l := track(host.InlineLauncher{Roles: roles})
	evs := &eventLog{}
	res, err := runTask(t, l, config(t, l, evs, 3), evs)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(3, 0), readOutput(t, res))
	assert.Zero(t, res.Counts.Parts, "unknown")
	assert.Equal(t, 3, res.Counts.Done)
}

// bareRequestor hides the files a gtask app publishes, as an app in
// another language would not write them.
type bareRequestor struct {
	requestor.Handler
	workDir string
}

func (b *bareRequestor) hide() {
	matches, _ := filepath.Glob(filepath.Join(b.workDir, "*", ".gtask", "*.json"))
	for _, m := range matches {
		os.Remove(m)
	}
}

func (b *bareRequestor) CreateTask(ctx context.Context, taskID string, maxSubtasks int, params json.RawMessage) (requestor.Task, error) {
	defer b.hide()
	return b.Handler.CreateTask(ctx, taskID, maxSubtasks, params)
}

func (b *bareRequestor) Verify(ctx context.Context, taskID, subtaskID string) (requestor.Verdict, string, error) {
	defer b.hide()
	return b.Handler.Verify(ctx, taskID, subtaskID)
}

func TestRunStartFailure(t *testing.T) {
	var n atomic.Int32
	l := track(&failingLauncher{
		Launcher: host.InlineLauncher{Roles: sqRoles(&sqApp{})},
		fail: func(role host.Role) bool {
			return role == host.RoleProvider && n.Add(1) == 1
		},
	})
	evs := &eventLog{}
	res, err := runTask(t, l, config(t, l, evs, 2), evs)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(2, 0), readOutput(t, res))
	failed := evs.ofKind(host.EventComputeFailed)
	require.Len(t, failed, 1)
	assert.Equal(t, host.FailStart, failed[0].Fail)
	assert.Equal(t, "starting the provider: no such machine", failed[0].Reason)
}

// failingLauncher fails the starts fail picks.
type failingLauncher struct {
	host.Launcher
	fail func(host.Role) bool
}

func (f *failingLauncher) Start(ctx context.Context, role host.Role, workDir, logPath string) (host.Instance, error) {
	if f.fail(role) {
		return nil, errors.New("no such machine")
	}
	return f.Launcher.Start(ctx, role, workDir, logPath)
}

// TestRunProviderCrash: a provider that dies during Compute is a crash.
func TestRunProviderCrash(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) { testRunProviderCrash(t, p.direct) })
	}
}

func testRunProviderCrash(t *testing.T, direct bool) {
	app := &sqApp{}
	l := sqLauncherOn(direct, app)
	var f firsts
	var killed sync.WaitGroup
	defer killed.Wait()
	app.compute = func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
		if s.Part == 0 && f.first(0) {
			// The provider dies under its own feet; Kill waits for this
			// call, so it cannot be called from it.
			killed.Go(func() { l.lastProvider().Kill() })
			<-ctx.Done()
			return "", ctx.Err()
		}
		return honest()
	}
	evs := &eventLog{}
	cfg := config(t, l, evs, 2)
	cfg.Providers = 1
	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(2, 0), readOutput(t, res))
	failed := evs.ofKind(host.EventComputeFailed)
	require.Len(t, failed, 1)
	assert.Equal(t, host.FailCrash, failed[0].Fail)
	assert.True(t, strings.HasPrefix(failed[0].Reason, "the provider exited during Compute"), failed[0].Reason)
}

func TestRunEventsHook(t *testing.T) {
	// OnEvent sees every event once, in order, never concurrently.
	l := sqLauncher(&sqApp{})
	var inHook atomic.Int32
	var seqs []int64
	cfg := config(t, l, &eventLog{}, 6)
	cfg.Providers = 3
	cfg.VerifyConcurrency = 3
	cfg.OnEvent = func(ev host.Event) {
		if inHook.Add(1) != 1 {
			t.Error("OnEvent called concurrently")
		}
		seqs = append(seqs, ev.Seq)
		time.Sleep(time.Millisecond)
		inHook.Add(-1)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	res, err := host.Run(ctx, cfg)
	require.NoError(t, err)
	l.requireAllGone(t)
	assert.Equal(t, host.Finished, res.Outcome)
	for i, s := range seqs {
		require.Equal(t, int64(i+1), s)
	}
}

func TestSummaryString(t *testing.T) {
	s := host.Summary{
		Outcome: host.Finished, Duration: 1500 * time.Millisecond,
		Counts: host.Counts{
			Parts: 4, Done: 4, Assigned: 7, Computed: 6, Accepted: 4, Rejected: 2, Failed: 3, Retried: 3,
			FailedBy: map[host.FailKind]int{host.FailRejected: 2, host.FailCrash: 1},
			Banned:   3,
			Injected: map[host.ChaosKind]int{host.ChaosCrash: 1, host.ChaosWrong: 2}, Recovered: 3,
		},
	}
	assert.Equal(t, "finished in 1.5s: 4/4 parts, 7 subtasks (6 computed, 4 accepted, 2 rejected), "+
		"3 failed attempts (crash 1, rejected 2), 3 retried, 3 nodes banned; chaos: injected 3 (crash 1, wrong 2), recovered 3", s.String())
	s = host.Summary{Outcome: host.Aborted, Reason: "the task's time limit (Timeout) of 1s passed", Duration: time.Second}
	assert.Equal(t, "aborted in 1s (the task's time limit (Timeout) of 1s passed): 0 parts, 0 subtasks (0 computed, 0 accepted, 0 rejected), 0 failed attempts, 0 retried", s.String())
}

// TestRunStuck: a task that cannot progress is aborted rather than waited
// for.
func TestRunStuck(t *testing.T) {
	t.Run("pending but nothing handed out", func(t *testing.T) {
		app := &sqApp{}
		roles := sqRoles(app)
		roles.Requestor = func(workDir string, log *slog.Logger) (requestor.Handler, error) {
			return &stingyRequestor{Handler: sdk.NewRequestor(app, workDir, log)}, nil
		}
		l := track(host.InlineLauncher{Roles: roles})
		evs := &eventLog{}
		res, err := runTask(t, l, config(t, l, evs, 2), evs)
		require.NoError(t, err)
		assert.Equal(t, host.Aborted, res.Outcome)
		assert.Equal(t, "stuck: HasPendingSubtasks answers true, but NextSubtask gives none of the 2 provider slots a subtask", res.Reason)
		replaced := evs.ofKind(host.EventNodeReplaced)
		require.Len(t, replaced, 2, "each slot tried a new node")
		assert.Equal(t, "node-0", replaced[0].Node)
		assert.Equal(t, "node-2", replaced[0].NewNode)
	})
	t.Run("waiting for data that never comes", func(t *testing.T) {
		app := &sqApp{verify: func(context.Context, *sdk.Result[sqParams, sqPart], func() (sdk.Verdict, error)) (sdk.Verdict, error) {
			return sdk.AwaitData("waiting for Godot"), nil
		}}
		l := sqLauncher(app)
		evs := &eventLog{}
		res, err := runTask(t, l, config(t, l, evs, 2), evs)
		require.NoError(t, err)
		assert.Equal(t, host.Aborted, res.Outcome)
		assert.Regexp(t, `^stuck: subtasks \S+, \S+ wait for data, but nothing is pending, computing or verifying$`, res.Reason)
		// Each was verified again after the other's first verification at
		// most, then once more when nothing else was going on.
		assert.LessOrEqual(t, len(evs.ofKind(host.EventSubtaskVerified)), 6)
	})
}

// stingyRequestor says subtasks are pending but hands none out.
type stingyRequestor struct{ requestor.Handler }

func (stingyRequestor) NextSubtask(context.Context, string, string, string) (*requestor.Subtask, error) {
	return nil, nil
}

func TestRunVerifyTimeout(t *testing.T) {
	var f firsts
	app := &sqApp{verify: func(ctx context.Context, r *sdk.Result[sqParams, sqPart], check func() (sdk.Verdict, error)) (sdk.Verdict, error) {
		if r.Part == 1 && f.first(1) {
			<-ctx.Done()
			return sdk.Verdict{}, ctx.Err()
		}
		return check()
	}}
	l := sqLauncher(app)
	evs := &eventLog{}
	cfg := config(t, l, evs, 2)
	cfg.VerifyTimeout = time.Second
	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(2, 0), readOutput(t, res))
	verrs := evs.ofKind(host.EventVerifyError)
	require.Len(t, verrs, 1)
	assert.Equal(t, "DeadlineExceeded", verrs[0].Code)
	assert.Equal(t, "no answer within 1s (VerifyTimeout)", verrs[0].Reason)
}

// TestRunInconclusive: replicas that disagree make the app ask for one more
// replica, computed on a third node, and the majority wins.
func TestRunInconclusive(t *testing.T) {
	var f firsts
	app := &sqApp{
		compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
			if s.Part == 1 && f.first(1) {
				out, err := s.OutputPath("square.txt")
				if err != nil {
					return "", err
				}
				return out, os.WriteFile(out, []byte("2\n"), 0o644)
			}
			return honest()
		},
		// A check too weak to see the wrong result: only the replicas tell.
		verify: func(context.Context, *sdk.Result[sqParams, sqPart], func() (sdk.Verdict, error)) (sdk.Verdict, error) {
			return sdk.Accept(), nil
		},
	}
	l := sqLauncher(app, sdk.WithRedundancy(2))
	evs := &eventLog{}
	cfg := config(t, l, evs, 2)
	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(2, 0), readOutput(t, res))
	assert.Positive(t, res.Counts.Inconclusive)
	nodes := map[string]bool{}
	for _, ev := range evs.ofKind(host.EventSubtaskAssigned) {
		if *ev.Part == 1 {
			nodes[ev.Node] = true
		}
	}
	assert.Len(t, nodes, 3, "three replicas of part 1, on three nodes")
}
