package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtask/gtask/appmain"
	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/provider"
	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
	"github.com/gtask/gtask/taskapi"
)

// The in-process path (host.DirectInstance) against the gRPC path: the same
// app, the same calls, the same answers and codes.

// paths are the two ways to call an inline instance.
var paths = []struct {
	name   string
	direct bool
}{{"grpc", false}, {"direct", true}}

// requestorOf returns a client of inst: in process, or dialled at its
// address.
func requestorOf(t *testing.T, inst host.Instance, direct bool) *host.RequestorClient {
	t.Helper()
	if direct {
		d, ok := inst.(host.DirectInstance)
		require.True(t, ok, "an inline instance is a DirectInstance")
		return host.NewRequestorClient(d.Conn())
	}
	c, err := host.DialRequestor(testCtx(t), inst.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// providerOf returns a client of inst, as requestorOf does.
func providerOf(t *testing.T, inst host.Instance, direct bool) *host.ProviderClient {
	t.Helper()
	if direct {
		d, ok := inst.(host.DirectInstance)
		require.True(t, ok, "an inline instance is a DirectInstance")
		return host.NewProviderClient(d.Conn())
	}
	c, err := host.DialProvider(testCtx(t), inst.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// answer is what a call gave: its result, and its error's code and text.
type answer struct {
	Result any
	Code   codes.Code
	Err    string
}

func answerOf(result any, err error) answer {
	if err != nil {
		return answer{Code: status.Code(err), Err: err.Error()}
	}
	return answer{Result: result}
}

// scriptRequestor answers by its arguments' names, so that one table
// drives every kind of answer: "panic" panics, "zero" answers no verdict,
// and so on.
type scriptRequestor struct {
	release <-chan struct{} // what "deaf" waits for, whatever its ctx says
}

func (r scriptRequestor) CreateTask(_ context.Context, taskID string, maxSubtasks int, params json.RawMessage) (requestor.Task, error) {
	switch taskID {
	case "panic":
		panic("boom")
	case "exists":
		return requestor.Task{}, fmt.Errorf("task %q: %w", taskID, requestor.ErrTaskExists)
	case "badprereq":
		return requestor.Task{EnvID: "docker_cpu", Prerequisites: json.RawMessage(`{"image":`)}, nil
	}
	return requestor.Task{
		EnvID:         taskapi.DockerCPUEnvID(),
		Prerequisites: json.RawMessage(fmt.Sprintf(`{"max": %d, "params": %q}`, maxSubtasks, params)),
		MinMemoryMiB:  0.1, // not a float32: the wire rounds it
	}, nil
}

func (r scriptRequestor) NextSubtask(_ context.Context, _, subtaskID, nodeID string) (*requestor.Subtask, error) {
	switch subtaskID {
	case "none":
		return nil, nil
	case "empty":
		return &requestor.Subtask{Resources: []string{}}, nil
	case "badparams":
		return &requestor.Subtask{Params: json.RawMessage(`{"part"`)}, nil
	}
	return &requestor.Subtask{Params: json.RawMessage(fmt.Sprintf(`{"node": %q}`, nodeID)), Resources: []string{"a.txt", "b.txt"}}, nil
}

func (r scriptRequestor) Verify(ctx context.Context, _, subtaskID string) (requestor.Verdict, string, error) {
	switch subtaskID {
	case "ok":
		return requestor.Success, "fine", nil
	case "fail":
		return requestor.Failure, "wrong", nil
	case "await":
		return requestor.AwaitingData, "", nil
	case "zero":
		return 0, "forgot the verdict", nil
	case "five":
		return 5, "", nil
	case "unknown":
		return 0, "", fmt.Errorf("subtask %q: %w", subtaskID, requestor.ErrUnknownSubtask)
	case "field":
		return 0, "", &taskapi.FieldError{Field: "scale", Reason: "too big"}
	case "plain":
		return 0, "", errors.New("the checker's disk is full")
	case "ctx":
		return 0, "", fmt.Errorf("checking: %w", context.Canceled)
	case "badreason":
		return requestor.Success, "\xff\xfe", nil
	case "panic":
		panic("boom")
	case "block":
		<-ctx.Done()
		return 0, "", ctx.Err()
	case "deaf":
		<-r.release
		return requestor.Success, "late", nil
	}
	return requestor.Inconclusive, "", nil
}

func (r scriptRequestor) DiscardSubtasks(_ context.Context, _ string, ids []string) ([]string, error) {
	return ids, nil
}

func (r scriptRequestor) RunBenchmark(context.Context) (float64, error) { return 0.1, nil }

func (r scriptRequestor) HasPendingSubtasks(_ context.Context, taskID string) (bool, error) {
	return taskID == "t1", nil
}

func (r scriptRequestor) AbortTask(_ context.Context, taskID string) error {
	if taskID == "unknown" {
		return fmt.Errorf("task %q: %w", taskID, requestor.ErrUnknownTask)
	}
	return nil
}

func (r scriptRequestor) AbortSubtask(context.Context, string, string) error { return nil }

func (r scriptRequestor) Shutdown(context.Context) error { return nil }

// scriptProvider computes by the subtask's name.
type scriptProvider struct{ workDir string }

func (p scriptProvider) Compute(ctx context.Context, _, subtaskID string, params json.RawMessage) (string, error) {
	switch subtaskID {
	case "abs":
		return "/etc/passwd", nil
	case "parent":
		return "../outside.txt", nil
	case "sneaky":
		return "a/../../outside.txt", nil
	case "empty":
		return "", nil
	case "dot":
		return ".", nil
	case "plain":
		return "", errors.New("no GPU")
	case "invalid":
		return "", fmt.Errorf("params %s: %w", params, provider.ErrInvalidParams)
	case "panic":
		panic("boom")
	case "block":
		<-ctx.Done()
		return "", ctx.Err()
	case "nested":
		return "x/../out.txt", os.WriteFile(filepath.Join(p.workDir, "out.txt"), params, 0o644)
	}
	return "out.txt", os.WriteFile(filepath.Join(p.workDir, "out.txt"), params, 0o644)
}

func (scriptProvider) RunBenchmark(context.Context) (float64, error) { return 0.1, nil }

func scriptRoles(release <-chan struct{}) appmain.Roles {
	return appmain.Roles{
		Requestor: func(string, *slog.Logger) (requestor.Handler, error) {
			return scriptRequestor{release: release}, nil
		},
		Provider: func(workDir string, _ *slog.Logger) (provider.Handler, error) {
			return scriptProvider{workDir: workDir}, nil
		},
	}
}

func TestDirectRequestorAnswersAsGRPC(t *testing.T) {
	big := json.RawMessage(`"` + strings.Repeat("x", 5<<20) + `"`)
	calls := []struct {
		name string
		call func(ctx context.Context, c *host.RequestorClient) (any, error)
		want codes.Code
	}{
		{"CreateTask", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.CreateTask(ctx, "t1", 3, json.RawMessage(`{"parts": 2}`))
		}, codes.OK},
		{"CreateTask without params", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.CreateTask(ctx, "t1", 0, json.RawMessage{})
		}, codes.OK},
		{"CreateTask exists", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.CreateTask(ctx, "exists", 0, nil)
		}, codes.AlreadyExists},
		{"CreateTask empty id", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.CreateTask(ctx, "", 0, nil)
		}, codes.InvalidArgument},
		{"CreateTask id with a separator", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.CreateTask(ctx, "a/b", 0, nil)
		}, codes.InvalidArgument},
		{"CreateTask id ..", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.CreateTask(ctx, "..", 0, nil)
		}, codes.InvalidArgument},
		{"CreateTask id with a control character", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.CreateTask(ctx, "a\x00b", 0, nil)
		}, codes.InvalidArgument},
		{"CreateTask id not UTF-8", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.CreateTask(ctx, "a\xffb", 0, nil)
		}, codes.Internal}, // the client cannot even encode it
		{"CreateTask params not JSON", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.CreateTask(ctx, "t1", 0, json.RawMessage(`{"parts": `))
		}, codes.InvalidArgument},
		{"CreateTask params over 4 MiB", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.CreateTask(ctx, "t1", 0, big)
		}, codes.ResourceExhausted},
		{"CreateTask negative max", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.CreateTask(ctx, "t1", -1, nil)
		}, codes.InvalidArgument},
		{"CreateTask max over int32", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.CreateTask(ctx, "t1", 1<<40, nil)
		}, codes.InvalidArgument},
		{"CreateTask bad prerequisites", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.CreateTask(ctx, "badprereq", 0, nil)
		}, codes.Internal},
		{"CreateTask panics", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.CreateTask(ctx, "panic", 0, nil)
		}, codes.Internal},
		{"NextSubtask", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.NextSubtask(ctx, "t1", "s1", "node/0")
		}, codes.OK},
		{"NextSubtask none", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.NextSubtask(ctx, "t1", "none", "node-0")
		}, codes.OK},
		{"NextSubtask empty", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.NextSubtask(ctx, "t1", "empty", "node-0")
		}, codes.OK},
		{"NextSubtask bad params", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.NextSubtask(ctx, "t1", "badparams", "node-0")
		}, codes.Internal},
		{"NextSubtask no node", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.NextSubtask(ctx, "t1", "s2", "")
		}, codes.InvalidArgument},
		{"NextSubtask node with a control character", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.NextSubtask(ctx, "t1", "s2", "node\n0")
		}, codes.InvalidArgument},
		{"NextSubtask bad subtask id", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.NextSubtask(ctx, "t1", strings.Repeat("s", 129), "node-0")
		}, codes.InvalidArgument},
	}
	for _, v := range []struct {
		subtask string
		want    codes.Code
	}{
		{"ok", codes.OK}, {"fail", codes.OK}, {"await", codes.OK}, {"other", codes.OK},
		{"zero", codes.Internal}, {"five", codes.Internal}, {"unknown", codes.NotFound},
		{"field", codes.InvalidArgument}, {"plain", codes.Internal}, {"ctx", codes.Canceled},
		{"badreason", codes.Internal}, {"panic", codes.Internal}, {".", codes.InvalidArgument},
	} {
		calls = append(calls, struct {
			name string
			call func(ctx context.Context, c *host.RequestorClient) (any, error)
			want codes.Code
		}{"Verify " + v.subtask, func(ctx context.Context, c *host.RequestorClient) (any, error) {
			verdict, reason, err := c.Verify(ctx, "t1", v.subtask)
			return []any{verdict, reason}, err
		}, v.want})
	}
	calls = append(calls, []struct {
		name string
		call func(ctx context.Context, c *host.RequestorClient) (any, error)
		want codes.Code
	}{
		{"Verify past its deadline", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			v, reason, err := c.Verify(ctx, "t1", "block")
			return []any{v, reason}, err
		}, codes.DeadlineExceeded},
		{"Verify cancelled before the call", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			v, reason, err := c.Verify(ctx, "t1", "ok")
			return []any{v, reason}, err
		}, codes.Canceled},
		{"DiscardSubtasks", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.DiscardSubtasks(ctx, "t1", []string{"a", "b"})
		}, codes.OK},
		{"DiscardSubtasks none", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.DiscardSubtasks(ctx, "t1", nil)
		}, codes.OK},
		{"DiscardSubtasks a bad id", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.DiscardSubtasks(ctx, "t1", []string{"a", "b/c"})
		}, codes.InvalidArgument},
		{"RunBenchmark", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.RunBenchmark(ctx)
		}, codes.OK},
		{"HasPendingSubtasks", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.HasPendingSubtasks(ctx, "t1")
		}, codes.OK},
		{"HasPendingSubtasks bad id", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return c.HasPendingSubtasks(ctx, "")
		}, codes.InvalidArgument},
		{"AbortTask unknown", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return nil, c.AbortTask(ctx, "unknown")
		}, codes.NotFound},
		{"AbortSubtask", func(ctx context.Context, c *host.RequestorClient) (any, error) {
			return nil, c.AbortSubtask(ctx, "t1", "s1")
		}, codes.OK},
	}...)

	l := host.InlineLauncher{Roles: scriptRoles(nil)}
	clients := map[bool]*host.RequestorClient{}
	for _, p := range paths {
		inst, _, _ := startApp(t, l, host.RoleRequestor)
		clients[p.direct] = requestorOf(t, inst, p.direct)
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			want := answerOf(tc.call(testCtx(t), clients[false]))
			got := answerOf(tc.call(testCtx(t), clients[true]))
			assert.Equal(t, tc.want, want.Code, "over gRPC: %s", want.Err)
			if want.Code == codes.DeadlineExceeded {
				// Which end sees the deadline first is a race, whose
				// loser's words gRPC passes on: only the code is sure.
				want.Err, got.Err = "", ""
			}
			assert.Equal(t, want, got)
		})
	}
}

func TestDirectProviderAnswersAsGRPC(t *testing.T) {
	tests := []struct {
		name, task, subtask string
		params              json.RawMessage
		want                codes.Code
	}{
		{"computes", "t1", "s1", json.RawMessage(`{"part": 1}`), codes.OK},
		{"no params", "t1", "s1", nil, codes.OK},
		{"cleans the path", "t1", "nested", json.RawMessage(`{}`), codes.OK},
		{"absolute path", "t1", "abs", nil, codes.Internal},
		{"parent path", "t1", "parent", nil, codes.Internal},
		{"path leaving through ..", "t1", "sneaky", nil, codes.Internal},
		{"no path", "t1", "empty", nil, codes.Internal},
		{"the dir itself", "t1", "dot", nil, codes.Internal},
		{"app error", "t1", "plain", nil, codes.Internal},
		{"invalid params", "t1", "invalid", json.RawMessage(`{"scale": -1}`), codes.InvalidArgument},
		{"panic", "t1", "panic", nil, codes.Internal},
		{"empty task id", "", "s1", nil, codes.InvalidArgument},
		{"subtask id with a separator", "t1", `a\b`, nil, codes.InvalidArgument},
		{"params not JSON", "t1", "s1", json.RawMessage(`[1,`), codes.InvalidArgument},
		{"params not UTF-8", "t1", "s1", json.RawMessage("\"\xff\""), codes.Internal},
	}
	l := host.InlineLauncher{Roles: scriptRoles(nil)}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var answers []answer
			for _, p := range paths {
				inst, _, _ := startApp(t, l, host.RoleProvider)
				c := providerOf(t, inst, p.direct)
				answers = append(answers, answerOf(c.Compute(testCtx(t), tc.task, tc.subtask, tc.params)))
				if answers[len(answers)-1].Code == codes.Internal && strings.Contains(answers[len(answers)-1].Err, "marshaling") {
					// Refused by the client: the provider never heard of it.
					continue
				}
				// One call, answered or refused, is the provider's life.
				requireDone(t, inst)
				require.NoError(t, inst.Wait())
				_, err := c.Compute(testCtx(t), tc.task, "again", nil)
				assert.Contains(t, []codes.Code{codes.Unavailable, codes.FailedPrecondition}, status.Code(err), "%s: a second call: %v", p.name, err)
			}
			assert.Equal(t, tc.want, answers[0].Code, "over gRPC: %s", answers[0].Err)
			assert.Equal(t, answers[0], answers[1])
		})
	}
}

// TestDirectDeadlineOnDeafHandler: a caller whose deadline passes returns
// then, in process as over gRPC, though the handler ignores its context;
// the handler is the server's, and stopping the instance waits for it.
func TestDirectDeadlineOnDeafHandler(t *testing.T) {
	release := make(chan struct{})
	l := host.InlineLauncher{Roles: scriptRoles(release)}
	var answers []answer
	var insts []host.Instance
	for _, p := range paths {
		inst, _, _ := startApp(t, l, host.RoleRequestor)
		insts = append(insts, inst)
		c := requestorOf(t, inst, p.direct)
		ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
		start := time.Now()
		v, reason, err := c.Verify(ctx, "t1", "deaf")
		cancel()
		assert.Less(t, time.Since(start), 10*time.Second, "%s: the caller waited for the handler", p.name)
		answers = append(answers, answerOf([]any{v, reason}, err))
	}
	assert.Equal(t, codes.DeadlineExceeded, answers[0].Code)
	// gRPC's words for a deadline depend on who saw it first.
	answers[0].Err, answers[1].Err = "", ""
	assert.Equal(t, answers[0], answers[1])

	stopped := make(chan error, 1)
	go func() { stopped <- insts[1].Stop(context.Background()) }()
	select {
	case <-stopped:
		t.Fatal("Stop did not wait for the handler in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-stopped)
}

// TestDirectInstanceNeedsNoPort: a provider called in process binds no
// port; its Addr, asked for, binds one and serves gRPC as well.
func TestDirectInstanceNeedsNoPort(t *testing.T) {
	l := host.InlineLauncher{Roles: scriptRoles(nil)}
	inst, _, logPath := startApp(t, l, host.RoleProvider)
	out, err := providerOf(t, inst, true).Compute(testCtx(t), "t1", "s1", nil)
	require.NoError(t, err)
	assert.Equal(t, "out.txt", out)
	requireDone(t, inst)
	assert.NotContains(t, readLog(t, logPath), "listening", "no port was bound")
	assert.Empty(t, inst.Addr(), "a stopped instance binds nothing")

	// A requestor serves both ways at once.
	inst, _, logPath = startApp(t, l, host.RoleRequestor)
	direct := requestorOf(t, inst, true)
	pending, err := direct.HasPendingSubtasks(testCtx(t), "t1")
	require.NoError(t, err)
	assert.True(t, pending)
	addr := inst.Addr()
	require.NotEmpty(t, addr)
	assert.Equal(t, addr, inst.Addr(), "bound once")
	pending, err = requestorOf(t, inst, false).HasPendingSubtasks(testCtx(t), "t1")
	require.NoError(t, err)
	assert.True(t, pending)
	log := readLog(t, logPath)
	assert.Contains(t, log, "msg=listening")
	assert.Contains(t, log, "addr="+addr)

	// Once stopped, it refuses calls as a gone server does.
	require.NoError(t, inst.Stop(testCtx(t)))
	_, err = direct.HasPendingSubtasks(testCtx(t), "t1")
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}

// TestDirectKillDuringCall: a call in flight when the instance is killed
// ends at once, Canceled or Unavailable as over gRPC, and the instance is
// gone.
func TestDirectKillDuringCall(t *testing.T) {
	l := host.InlineLauncher{Roles: scriptRoles(nil)}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			inst, _, _ := startApp(t, l, host.RoleRequestor)
			c := requestorOf(t, inst, p.direct)
			errs := make(chan error, 1)
			go func() {
				_, _, err := c.Verify(testCtx(t), "t1", "block")
				errs <- err
			}()
			time.Sleep(50 * time.Millisecond) // let the call reach the handler
			require.NoError(t, inst.Kill())
			err := <-errs
			assert.Contains(t, []codes.Code{codes.Canceled, codes.Unavailable}, status.Code(err), "%v", err)
			requireDone(t, inst)
		})
	}
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// TestRunSameOnBothPaths runs one task, with a failed compute, a rejected
// result and a Verify error on the way, over gRPC and in process: the
// runs' events are the same but for the subtask ids and times.
func TestRunSameOnBothPaths(t *testing.T) {
	run := func(t *testing.T, direct bool) []string {
		var f firsts
		app := &sqApp{
			compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
				switch {
				case s.Part == 1 && f.first(1):
					return "", errors.New("out of unobtainium")
				case s.Part == 2 && f.first(2):
					out, err := s.OutputPath("square.txt")
					if err != nil {
						return "", err
					}
					return out, os.WriteFile(out, []byte("5\n"), 0o644)
				}
				return honest()
			},
			verify: func(ctx context.Context, r *sdk.Result[sqParams, sqPart], check func() (sdk.Verdict, error)) (sdk.Verdict, error) {
				if r.Part == 3 && f.first(-3) {
					return sdk.Verdict{}, errors.New("flaky checker")
				}
				return check()
			},
		}
		var inner host.Launcher = host.InlineLauncher{Roles: sqRoles(app)}
		if !direct {
			inner = grpcOnly{inner}
		}
		l := track(inner)
		evs := &eventLog{}
		cfg := config(t, l, evs, 4)
		cfg.Providers = 1
		cfg.VerifyConcurrency = 1
		res, err := runTask(t, l, cfg, evs)
		require.NoError(t, err)
		assert.Equal(t, wantSquares(4, 0), readOutput(t, res))
		var lines []string
		for _, ev := range evs.all() {
			part := -1
			if ev.Part != nil {
				part = *ev.Part
			}
			reason := uuidRE.ReplaceAllString(ev.Reason, "S")
			reason = strings.TrimSuffix(reason, "; task finished")
			lines = append(lines, fmt.Sprintf("%s part=%d attempt=%d fail=%s code=%s verdict=%s reason=%s",
				ev.Kind, part, ev.Attempt, ev.Fail, ev.Code, ev.Verdict, reason))
		}
		// One provider and one verification at a time still leave the
		// order of a verification and the next compute to the scheduler,
		// and so which part a node gets and which verdict is the last.
		slices.Sort(lines)
		return lines
	}
	grpcEvents := run(t, false)
	directEvents := run(t, true)
	assert.Equal(t, grpcEvents, directEvents)
	assert.Contains(t, strings.Join(directEvents, "\n"), "compute_failed part=1 attempt=1 fail=error code=Internal")
}
