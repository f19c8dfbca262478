package taskstore_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtask/gtask/internal/taskstore"
	"github.com/gtask/gtask/requestor"
)

// The verdicts as the app gives them to RecordVerify.
var (
	accept = taskstore.Check{Verdict: requestor.Success, Reason: "ok", Hash: "h1", File: "r"}
	reject = taskstore.Check{Verdict: requestor.Failure, Reason: "wrong", Hash: "h1", File: "r"}
	await  = taskstore.Check{Verdict: requestor.AwaitingData, Reason: "later", Hash: "h1", File: "r"}
	unsure = taskstore.Check{Verdict: requestor.Inconclusive, Reason: "unsure", Hash: "h1", File: "r"}
	recnt  = taskstore.Check{} // re-count a vote
)

func vote(hash string) taskstore.Check {
	return taskstore.Check{Verdict: requestor.Success, Reason: "ok", Hash: hash, File: "r"}
}

// env is one store under test and the path to reopen it.
type env struct {
	t    *testing.T
	path string
	s    *taskstore.Store
}

func parts(n int, deps map[int][]int) []taskstore.Part {
	ps := make([]taskstore.Part, n)
	for i := range ps {
		ps[i] = taskstore.Part{Params: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), Resources: []string{fmt.Sprintf("in%d", i)}, DependsOn: deps[i]}
	}
	return ps
}

func newEnv(t *testing.T, k, maxAttempts int, ps []taskstore.Part) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := taskstore.Create(path, taskstore.Task{ID: "T", Params: json.RawMessage(`{"a":1}`), Redundancy: k, MaxAttempts: maxAttempts}, ps)
	require.NoError(t, err)
	e := &env{t: t, path: path, s: s}
	t.Cleanup(func() { e.s.Close() })
	return e
}

// reopen closes the store and opens it again, as a restart does.
func (e *env) reopen() {
	e.t.Helper()
	require.NoError(e.t, e.s.Close())
	s, err := taskstore.Open(e.path)
	require.NoError(e.t, err)
	e.s = s
}

func (e *env) next(id, node string) int {
	e.t.Helper()
	a, err := e.s.Next(id, node)
	require.NoError(e.t, err)
	require.NotNil(e.t, a, "Next(%s, %s) handed out nothing", id, node)
	return a.Part
}

func (e *env) none(id, node string) {
	e.t.Helper()
	a, err := e.s.Next(id, node)
	require.NoError(e.t, err)
	require.Nil(e.t, a)
}

func (e *env) verify(id string, c taskstore.Check) taskstore.Answer {
	e.t.Helper()
	a, err := e.s.RecordVerify(id, c)
	require.NoError(e.t, err)
	return a
}

func (e *env) sub(id string) taskstore.SubtaskInfo {
	e.t.Helper()
	si, err := e.s.Subtask(id)
	require.NoError(e.t, err)
	return si
}

func (e *env) part(i int) taskstore.PartInfo {
	e.t.Helper()
	pi, err := e.s.Part(i)
	require.NoError(e.t, err)
	return pi
}

func (e *env) task() taskstore.Task {
	e.t.Helper()
	tk, err := e.s.Task()
	require.NoError(e.t, err)
	return tk
}

func (e *env) pending() bool {
	e.t.Helper()
	ok, err := e.s.HasPending()
	require.NoError(e.t, err)
	return ok
}

// TestSubtaskTransitions drives subtask "s" of part 0 into each state, then
// makes each call, and checks the answer and the states that follow.
func TestSubtaskTransitions(t *testing.T) {
	setups := map[string]func(e *env){
		"COMPUTING": func(e *env) { e.next("s", "n1") },
		"VERIFYING": func(e *env) { e.next("s", "n1"); e.verify("s", await) },
		"SUCCESS":   func(e *env) { e.next("s", "n1"); e.verify("s", accept) },
		"FAILURE":   func(e *env) { e.next("s", "n1"); e.verify("s", reject) },
		"ABORTED": func(e *env) {
			e.next("s", "n1")
			require.NoError(e.t, e.s.AbortSubtask("s"))
		},
		"DETACHED": func(e *env) { e.next("s", "n1"); e.reopen() },
	}
	type want struct {
		err      error             // the call's error (errors.Is)
		verdict  requestor.Verdict // for Verify calls
		discard  []string          // for discard
		sub      taskstore.State   // subtask s afterwards
		part     taskstore.State   // part 0 afterwards
		comp     bool              // part 0 computable afterwards
		attempts int
	}
	calls := map[string]func(e *env) (requestor.Verdict, []string, error){
		"accept": func(e *env) (requestor.Verdict, []string, error) {
			a, err := e.s.RecordVerify("s", accept)
			return a.Verdict, nil, err
		},
		"reject": func(e *env) (requestor.Verdict, []string, error) {
			a, err := e.s.RecordVerify("s", reject)
			return a.Verdict, nil, err
		},
		"await": func(e *env) (requestor.Verdict, []string, error) {
			a, err := e.s.RecordVerify("s", await)
			return a.Verdict, nil, err
		},
		"inconclusive": func(e *env) (requestor.Verdict, []string, error) {
			a, err := e.s.RecordVerify("s", unsure)
			return a.Verdict, nil, err
		},
		"recount": func(e *env) (requestor.Verdict, []string, error) {
			a, err := e.s.RecordVerify("s", recnt)
			return a.Verdict, nil, err
		},
		"abortsub": func(e *env) (requestor.Verdict, []string, error) { return 0, nil, e.s.AbortSubtask("s") },
		"discard": func(e *env) (requestor.Verdict, []string, error) {
			ids, err := e.s.Discard([]string{"s"})
			return 0, ids, err
		},
		"aborttask":    func(e *env) (requestor.Verdict, []string, error) { _, err := e.s.AbortTask(); return 0, nil, err },
		"next-same-id": func(e *env) (requestor.Verdict, []string, error) { _, err := e.s.Next("s", "n2"); return 0, nil, err },
	}
	const (
		W  = taskstore.Waiting
		C  = taskstore.Computing
		V  = taskstore.Verifying
		OK = taskstore.Success
		F  = taskstore.Failure
		A  = taskstore.Aborted
	)
	tests := []struct {
		from, call string
		want       want
	}{
		{"COMPUTING", "accept", want{verdict: requestor.Success, sub: OK, part: OK}},
		{"COMPUTING", "reject", want{verdict: requestor.Failure, sub: F, part: W, comp: true, attempts: 1}},
		{"COMPUTING", "await", want{verdict: requestor.AwaitingData, sub: V, part: V}},
		{"COMPUTING", "inconclusive", want{verdict: requestor.Inconclusive, sub: V, part: V, comp: true, attempts: 1}},
		{"COMPUTING", "recount", want{err: requestor.ErrWrongState, sub: C, part: C}},
		{"COMPUTING", "abortsub", want{sub: A, part: W, comp: true, attempts: 1}},
		{"COMPUTING", "discard", want{discard: nil, sub: C, part: C}},
		{"COMPUTING", "aborttask", want{sub: A, part: A}},
		{"COMPUTING", "next-same-id", want{err: requestor.ErrSubtaskExists, sub: C, part: C}},

		{"VERIFYING", "accept", want{verdict: requestor.Success, sub: OK, part: OK}},
		{"VERIFYING", "reject", want{verdict: requestor.Failure, sub: F, part: W, comp: true, attempts: 1}},
		{"VERIFYING", "await", want{verdict: requestor.AwaitingData, sub: V, part: V}},
		{"VERIFYING", "inconclusive", want{verdict: requestor.Inconclusive, sub: V, part: V, comp: true, attempts: 1}},
		{"VERIFYING", "recount", want{err: requestor.ErrWrongState, sub: V, part: V}},
		{"VERIFYING", "abortsub", want{sub: A, part: W, comp: true, attempts: 1}},
		{"VERIFYING", "discard", want{discard: []string{"s"}, sub: A, part: W, comp: true}},
		{"VERIFYING", "aborttask", want{sub: A, part: A}},
		{"VERIFYING", "next-same-id", want{err: requestor.ErrSubtaskExists, sub: V, part: V}},

		// A final verdict is answered again, whatever the new check says.
		{"SUCCESS", "accept", want{verdict: requestor.Success, sub: OK, part: OK}},
		{"SUCCESS", "reject", want{verdict: requestor.Success, sub: OK, part: OK}},
		{"SUCCESS", "await", want{verdict: requestor.Success, sub: OK, part: OK}},
		{"SUCCESS", "inconclusive", want{verdict: requestor.Success, sub: OK, part: OK}},
		{"SUCCESS", "recount", want{verdict: requestor.Success, sub: OK, part: OK}},
		{"SUCCESS", "abortsub", want{err: requestor.ErrWrongState, sub: OK, part: OK}},
		{"SUCCESS", "discard", want{discard: []string{"s"}, sub: A, part: W, comp: true}},
		{"SUCCESS", "aborttask", want{sub: OK, part: OK}},
		{"SUCCESS", "next-same-id", want{err: requestor.ErrSubtaskExists, sub: OK, part: OK}},

		{"FAILURE", "accept", want{verdict: requestor.Failure, sub: F, part: W, comp: true, attempts: 1}},
		{"FAILURE", "reject", want{verdict: requestor.Failure, sub: F, part: W, comp: true, attempts: 1}},
		{"FAILURE", "recount", want{verdict: requestor.Failure, sub: F, part: W, comp: true, attempts: 1}},
		{"FAILURE", "abortsub", want{sub: F, part: W, comp: true, attempts: 1}},
		{"FAILURE", "discard", want{discard: nil, sub: F, part: W, comp: true, attempts: 1}},
		{"FAILURE", "aborttask", want{sub: F, part: A, attempts: 1}},
		{"FAILURE", "next-same-id", want{err: requestor.ErrSubtaskExists, sub: F, part: W, comp: true, attempts: 1}},

		{"ABORTED", "accept", want{err: taskstore.ErrSubtaskAborted, sub: A, part: W, comp: true, attempts: 1}},
		{"ABORTED", "recount", want{err: taskstore.ErrSubtaskAborted, sub: A, part: W, comp: true, attempts: 1}},
		{"ABORTED", "abortsub", want{sub: A, part: W, comp: true, attempts: 1}},
		{"ABORTED", "discard", want{discard: nil, sub: A, part: W, comp: true, attempts: 1}},
		{"ABORTED", "aborttask", want{sub: A, part: A, attempts: 1}},
		{"ABORTED", "next-same-id", want{err: requestor.ErrSubtaskExists, sub: A, part: W, comp: true, attempts: 1}},

		// Detached by a restart: the part is computable again, and a late
		// result still counts.
		{"DETACHED", "accept", want{verdict: requestor.Success, sub: OK, part: OK}},
		{"DETACHED", "reject", want{verdict: requestor.Failure, sub: F, part: W, comp: true, attempts: 1}},
		{"DETACHED", "await", want{verdict: requestor.AwaitingData, sub: V, part: V}},
		{"DETACHED", "recount", want{err: requestor.ErrWrongState, sub: C, part: W, comp: true}},
		{"DETACHED", "abortsub", want{sub: A, part: W, comp: true}},
		{"DETACHED", "discard", want{discard: nil, sub: C, part: W, comp: true}},
		{"DETACHED", "aborttask", want{sub: C, part: A}},
		{"DETACHED", "next-same-id", want{err: requestor.ErrSubtaskExists, sub: C, part: W, comp: true}},
	}
	for _, tc := range tests {
		t.Run(tc.from+"/"+tc.call, func(t *testing.T) {
			e := newEnv(t, 1, 3, parts(2, nil))
			setups[tc.from](e)
			v, ids, err := calls[tc.call](e)
			if tc.want.err != nil {
				require.ErrorIs(t, err, tc.want.err)
			} else {
				require.NoError(t, err)
				assert.Equal(t, tc.want.verdict, v, "verdict")
				assert.Equal(t, tc.want.discard, ids, "discarded")
			}
			assert.Equal(t, tc.want.sub, e.sub("s").State, "subtask state")
			p := e.part(0)
			assert.Equal(t, tc.want.part, p.State, "part state")
			assert.Equal(t, tc.want.comp, p.Computable, "part computable")
			assert.Equal(t, tc.want.attempts, p.Attempts, "attempts")
			// Every state is durable: a restart changes nothing but
			// COMPUTING subtasks, which it detaches.
			before := e.sub("s")
			e.reopen()
			after := e.sub("s")
			assert.Equal(t, before.State, after.State, "subtask state after a restart")
			assert.Equal(t, before.Verdict, after.Verdict, "verdict after a restart")
		})
	}
}

// TestCallsOnEndedTasks checks what every call answers once a task is
// aborted, finished or failed.
func TestCallsOnEndedTasks(t *testing.T) {
	ends := map[string]func(e *env){
		"aborted": func(e *env) {
			e.next("done", "n1")
			e.verify("done", accept)
			e.next("live", "n1")
			ok, err := e.s.AbortTask()
			require.NoError(e.t, err)
			require.True(e.t, ok)
		},
		"finished": func(e *env) {
			e.next("done", "n1")
			e.next("done2", "n1")
			require.False(e.t, e.verify("done", accept).Merge)
			require.True(e.t, e.verify("done2", accept).Merge)
			require.NoError(e.t, e.s.Finish())
		},
		"failed": func(e *env) {
			e.next("done", "n1")
			e.verify("done", reject) // K = 1: the part fails, and the task
		},
	}
	type want struct {
		next, verifyDone, abortSub, discard error
		doneVerdict                         requestor.Verdict
	}
	tests := []struct {
		end  string
		want want
	}{
		{"aborted", want{next: requestor.ErrTaskAborted, verifyDone: requestor.ErrTaskAborted, abortSub: requestor.ErrTaskAborted, discard: requestor.ErrTaskAborted}},
		{"finished", want{next: taskstore.ErrTaskFinished, abortSub: requestor.ErrWrongState, discard: taskstore.ErrTaskFinished, doneVerdict: requestor.Success}},
		{"failed", want{next: taskstore.ErrTaskFailed, discard: taskstore.ErrTaskFailed, doneVerdict: requestor.Failure}},
	}
	for _, tc := range tests {
		t.Run(tc.end, func(t *testing.T) {
			e := newEnv(t, 1, 1, parts(2, nil))
			ends[tc.end](e)
			for round := range 2 { // and again after a restart
				assert.False(t, e.pending(), "HasPending")
				_, err := e.s.Next("new", "n2")
				assert.ErrorIs(t, err, tc.want.next, "Next")
				assert.Equal(t, codes.FailedPrecondition, status.Code(err), "Next")
				a, err := e.s.RecordVerify("done", accept)
				if tc.want.verifyDone != nil {
					assert.ErrorIs(t, err, tc.want.verifyDone, "Verify")
				} else {
					assert.NoError(t, err, "Verify")
					assert.Equal(t, tc.want.doneVerdict, a.Verdict, "Verify of the done subtask")
				}
				err = e.s.AbortSubtask("done")
				if tc.want.abortSub != nil {
					assert.ErrorIs(t, err, tc.want.abortSub, "AbortSubtask")
				} else {
					assert.NoError(t, err, "AbortSubtask")
				}
				_, err = e.s.Discard([]string{"done"})
				assert.ErrorIs(t, err, tc.want.discard, "Discard")
				ok, err := e.s.AbortTask()
				assert.NoError(t, err, "AbortTask")
				assert.False(t, ok, "AbortTask changes nothing")
				_, err = e.s.RecordVerify("nope", accept)
				if tc.end == "aborted" {
					assert.ErrorIs(t, err, requestor.ErrTaskAborted)
				} else {
					assert.ErrorIs(t, err, requestor.ErrUnknownSubtask)
				}
				if round == 0 {
					e.reopen()
				}
			}
			assert.Equal(t, map[string]taskstore.TaskState{"aborted": taskstore.TaskAborted, "finished": taskstore.TaskFinished, "failed": taskstore.TaskFailed}[tc.end], e.task().State)
		})
	}
}

func TestUnknownSubtask(t *testing.T) {
	e := newEnv(t, 1, 3, parts(1, nil))
	_, err := e.s.BeginVerify("x")
	assert.ErrorIs(t, err, requestor.ErrUnknownSubtask)
	_, err = e.s.RecordVerify("x", accept)
	assert.ErrorIs(t, err, requestor.ErrUnknownSubtask)
	assert.ErrorIs(t, e.s.AbortSubtask("x"), requestor.ErrUnknownSubtask)
	ids, err := e.s.Discard([]string{"x"})
	assert.NoError(t, err, "unknown ids are ignored by Discard")
	assert.Empty(t, ids)
}

func TestCreateExistsAndOpenMissing(t *testing.T) {
	e := newEnv(t, 1, 3, parts(1, nil))
	_, err := taskstore.Create(e.path, taskstore.Task{ID: "T", Redundancy: 1, MaxAttempts: 1}, parts(1, nil))
	assert.ErrorIs(t, err, requestor.ErrTaskExists)
	_, err = taskstore.Open(filepath.Join(t.TempDir(), "none.db"))
	assert.ErrorContains(t, err, "no such file")
	_, err = taskstore.Create(filepath.Join(t.TempDir(), "bad.db"), taskstore.Task{ID: "T", Redundancy: 1, MaxAttempts: 1}, parts(2, map[int][]int{1: {1}}))
	assert.ErrorContains(t, err, "only on earlier parts")
}

func TestNextHandsOutPartsInOrderThenNothing(t *testing.T) {
	e := newEnv(t, 1, 3, parts(3, nil))
	assert.True(t, e.pending())
	for i := range 3 {
		a, err := e.s.Next(fmt.Sprint("s", i), "n")
		require.NoError(t, err)
		require.NotNil(t, a)
		assert.Equal(t, i, a.Part)
		assert.JSONEq(t, fmt.Sprintf(`{"i":%d}`, i), string(a.Params))
		assert.Equal(t, []string{fmt.Sprint("in", i)}, a.Resources)
	}
	assert.False(t, e.pending(), "all parts are being computed")
	e.none("s3", "n")
	// A failure makes its part computable again, first in line.
	e.verify("s1", reject)
	assert.True(t, e.pending())
	assert.Equal(t, 1, e.next("s4", "n"))
}

// TestPendingMeansNext checks the promise of HasPending: true means the next
// Next hands out a subtask, at every step of a task without redundancy.
func TestPendingMeansNext(t *testing.T) {
	e := newEnv(t, 1, 5, parts(4, map[int][]int{2: {0, 1}, 3: {2}}))
	checks := []taskstore.Check{reject, accept, unsure, accept, accept, accept, accept, accept}
	for i := 0; e.task().State == taskstore.TaskActive; i++ {
		require.Less(t, i, 50)
		id := fmt.Sprint("s", i)
		if !e.pending() {
			e.none(id, "n")
			// Nothing computable: verify a computing one to move on.
			moved := false
			for j := 0; j < 4 && !moved; j++ {
				for _, id := range e.part(j).Live {
					if e.sub(id).State == taskstore.Computing {
						e.verify(id, vote(fmt.Sprint("h", j)))
						moved = true
						break
					}
				}
			}
			require.True(t, moved, "nothing pending and nothing computing")
			continue
		}
		e.next(id, fmt.Sprint("node", i))
		if i < len(checks) && checks[i] != accept {
			e.verify(id, checks[i])
		}
	}
	assert.Equal(t, taskstore.TaskMerging, e.task().State)
}

func TestDependencies(t *testing.T) {
	// 0 <- 1 <- 3, 2 independent; 3 also depends on 2.
	e := newEnv(t, 1, 3, parts(4, map[int][]int{1: {0}, 3: {1, 2}}))
	assert.Equal(t, 0, e.next("a", "n"))
	assert.Equal(t, 2, e.next("c", "n"), "part 1 waits for part 0")
	e.none("x", "n")
	assert.Equal(t, taskstore.Waiting, e.part(1).State)
	assert.Equal(t, 1, e.part(1).Unmet)
	e.verify("a", accept)
	assert.Equal(t, 1, e.next("b", "n"))
	e.verify("b", accept)
	e.none("y", "n") // part 3 still waits for part 2
	e.verify("c", accept)
	assert.Equal(t, 3, e.next("d", "n"))
	a := e.verify("d", accept)
	assert.True(t, a.Merge, "the last part completes the task")
	assert.Equal(t, taskstore.TaskMerging, e.task().State)
}

func TestDiscardCascades(t *testing.T) {
	// 0 <- 1 <- 2, 0 <- 3, 4 independent.
	e := newEnv(t, 1, 3, parts(5, map[int][]int{1: {0}, 2: {1}, 3: {0}}))
	e.next("a", "n")
	e.next("e", "n")
	e.verify("a", accept)
	e.verify("e", accept)
	e.next("b", "n")
	e.verify("b", accept)
	e.next("c", "n") // part 2, computing
	e.next("d", "n") // part 3
	e.verify("d", accept)
	require.Equal(t, 4, e.task().Accepted)

	ids, err := e.s.Discard([]string{"a", "zz"})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"a", "b", "c", "d"}, ids, "a, and b, c, d that depend on it; not e")
	for _, id := range ids {
		assert.Equal(t, taskstore.Aborted, e.sub(id).State, id)
	}
	assert.Equal(t, taskstore.Success, e.sub("e").State)
	assert.Equal(t, 1, e.task().Accepted)
	assert.True(t, e.part(0).Computable)
	for _, i := range []int{1, 2, 3} {
		assert.False(t, e.part(i).Computable, "part %d waits for its dependencies again", i)
		assert.Equal(t, 0, e.part(i).Attempts, "a discard is no attempt")
	}
	assert.Equal(t, 1, e.part(2).Unmet)
	// Discarding the same again drops nothing.
	ids, err = e.s.Discard([]string{"a"})
	require.NoError(t, err)
	assert.Empty(t, ids)
	// The task carries on and completes.
	assert.Equal(t, 0, e.next("a2", "n"))
	e.verify("a2", accept)
	assert.ElementsMatch(t, []int{1, 3}, []int{e.next("b2", "n"), e.next("d2", "n")})
	e.verify("b2", accept)
	e.verify("d2", accept)
	assert.Equal(t, 2, e.next("c2", "n"))
	assert.True(t, e.verify("c2", accept).Merge)
}

func TestAttemptsExhaustedFailsTask(t *testing.T) {
	e := newEnv(t, 1, 3, parts(2, nil))
	e.next("a", "n1")
	e.next("live", "n1") // part 1, computing when the task fails
	assert.Equal(t, requestor.Failure, e.verify("a", reject).Verdict)
	e.next("b", "n2")
	require.NoError(t, e.s.AbortSubtask("b"))
	e.next("c", "n3")
	a := e.verify("c", reject)
	assert.Equal(t, requestor.Failure, a.Verdict)
	assert.Contains(t, a.Reason, "part 0 failed 3 times; task failed")
	tk := e.task()
	assert.Equal(t, taskstore.TaskFailed, tk.State)
	assert.Contains(t, tk.Reason, "part 0 failed 3 times")
	assert.False(t, e.pending())
	assert.Equal(t, taskstore.Failure, e.part(0).State)
	assert.Equal(t, taskstore.Aborted, e.sub("live").State, "live subtasks are aborted")
	_, err := e.s.Next("d", "n4")
	assert.ErrorIs(t, err, taskstore.ErrTaskFailed)
	assert.ErrorContains(t, err, "part 0 failed 3 times")
	// A retry of the failing Verify gives the same answer.
	again := e.verify("c", reject)
	assert.Equal(t, a, again)
	_, err = e.s.RecordVerify("live", accept)
	assert.ErrorIs(t, err, taskstore.ErrTaskFailed)
}

func TestVerifyIsIdempotent(t *testing.T) {
	e := newEnv(t, 2, 3, parts(1, nil))
	e.next("a", "n1")
	e.next("b", "n2")
	first := e.verify("a", vote("x"))
	assert.Equal(t, requestor.AwaitingData, first.Verdict)
	assert.Equal(t, first, e.verify("a", recnt), "re-count, nothing changed")
	assert.Equal(t, first, e.verify("a", vote("y")), "a concurrent check: the first vote stands")
	ans := e.verify("b", vote("x"))
	assert.Equal(t, requestor.Success, ans.Verdict)
	assert.True(t, ans.Merge)
	for range 2 {
		a := e.verify("a", recnt)
		assert.Equal(t, requestor.Success, a.Verdict)
		b := e.verify("b", reject)
		assert.Equal(t, requestor.Success, b.Verdict)
		assert.False(t, b.Merge, "the merge is asked for once")
		e.reopen()
	}
}

func TestRedundancy(t *testing.T) {
	t.Run("agree", func(t *testing.T) {
		e := newEnv(t, 2, 3, parts(1, nil))
		e.next("a", "n1")
		e.none("x", "n1") // node exclusion: n1 holds part 0
		assert.True(t, e.pending(), "another node may take the replica")
		e.next("b", "n2")
		assert.False(t, e.pending())
		assert.Equal(t, requestor.AwaitingData, e.verify("a", vote("h")).Verdict)
		assert.Equal(t, taskstore.Computing, e.part(0).State, "b is still computing")
		b := e.verify("b", vote("h"))
		assert.Equal(t, requestor.Success, b.Verdict)
		assert.Contains(t, b.Reason, "2 of 2 results")
		assert.Equal(t, requestor.Success, e.verify("a", recnt).Verdict)
		assert.Equal(t, "a", e.part(0).Accepted)
	})
	t.Run("disagree then majority", func(t *testing.T) {
		e := newEnv(t, 2, 3, parts(1, nil))
		e.next("a", "n1")
		e.next("b", "n2")
		e.verify("a", vote("h1"))
		b := e.verify("b", vote("h2"))
		assert.Equal(t, requestor.Inconclusive, b.Verdict)
		assert.Contains(t, b.Reason, "disagree")
		assert.Equal(t, requestor.Inconclusive, e.verify("b", recnt).Verdict, "a retry gives the same answer")
		p := e.part(0)
		assert.Equal(t, 3, p.Want)
		assert.Equal(t, 1, p.Attempts)
		assert.True(t, p.Computable)
		e.none("x", "n1")
		e.none("y", "n2")
		e.next("c", "n3")
		assert.Equal(t, requestor.AwaitingData, e.verify("a", recnt).Verdict, "votes changed: counted again")
		c := e.verify("c", vote("h2"))
		assert.Equal(t, requestor.Success, c.Verdict)
		assert.Equal(t, requestor.Success, e.verify("b", recnt).Verdict)
		a := e.verify("a", recnt)
		assert.Equal(t, requestor.Failure, a.Verdict)
		assert.Contains(t, a.Reason, "disagrees")
		assert.Equal(t, "b", e.part(0).Accepted)
		assert.Equal(t, taskstore.TaskMerging, e.task().State)
	})
	t.Run("three-way with k=3 decides at once", func(t *testing.T) {
		e := newEnv(t, 3, 3, parts(1, nil))
		for i, n := range []string{"n1", "n2", "n3"} {
			e.next(fmt.Sprint("s", i), n)
		}
		e.verify("s0", vote("h"))
		e.verify("s1", vote("z"))
		assert.Equal(t, requestor.Success, e.verify("s2", vote("h")).Verdict)
		assert.Equal(t, requestor.Failure, e.verify("s1", recnt).Verdict)
	})
	t.Run("no majority until attempts run out", func(t *testing.T) {
		e := newEnv(t, 2, 2, parts(1, nil))
		e.next("a", "n1")
		e.next("b", "n2")
		e.verify("a", vote("1"))
		assert.Equal(t, requestor.Inconclusive, e.verify("b", vote("2")).Verdict)
		e.next("c", "n3")
		c := e.verify("c", vote("3"))
		assert.Equal(t, requestor.Failure, c.Verdict)
		assert.Contains(t, c.Reason, "part 0 failed 2 times; task failed")
		assert.Equal(t, taskstore.TaskFailed, e.task().State)
	})
	t.Run("a rejected replica is replaced", func(t *testing.T) {
		e := newEnv(t, 2, 3, parts(1, nil))
		e.next("a", "n1")
		e.next("b", "n2")
		e.verify("a", vote("h"))
		assert.Equal(t, requestor.Failure, e.verify("b", reject).Verdict)
		e.none("x", "n1")
		e.next("c", "n2") // n2's subtask failed: it no longer holds the part
		assert.Equal(t, requestor.Success, e.verify("c", vote("h")).Verdict)
	})
	t.Run("inconclusive asks one agreeing replica", func(t *testing.T) {
		e := newEnv(t, 1, 3, parts(1, nil))
		e.next("a", "n1")
		a := e.verify("a", taskstore.Check{Verdict: requestor.Inconclusive, Reason: "can't tell", Hash: "h"})
		assert.Equal(t, requestor.Inconclusive, a.Verdict)
		assert.Contains(t, a.Reason, "can't tell")
		e.none("x", "n1")
		e.next("b", "n2")
		assert.Equal(t, requestor.Success, e.verify("b", vote("h")).Verdict)
		assert.Equal(t, requestor.Success, e.verify("a", recnt).Verdict)
	})
}

func TestRestartDetachesComputing(t *testing.T) {
	e := newEnv(t, 1, 3, parts(3, nil))
	e.next("a", "n1")
	e.next("b", "n1")
	e.next("c", "n1")
	e.verify("a", accept)
	e.verify("b", await)
	e.reopen()
	assert.Equal(t, taskstore.Success, e.sub("a").State, "verified results survive")
	assert.Equal(t, taskstore.Verifying, e.sub("b").State, "results in survive")
	c := e.sub("c")
	assert.Equal(t, taskstore.Computing, c.State)
	assert.True(t, c.Detached)
	assert.True(t, e.pending(), "part 2 is computable again")
	assert.Equal(t, 2, e.next("c2", "n2"))
	assert.Equal(t, 0, e.part(2).Attempts, "a restart costs no attempt")
	// Both results come in: the first is used, the late one is not.
	assert.Equal(t, requestor.Success, e.verify("c2", accept).Verdict)
	late := e.verify("c", accept)
	assert.Equal(t, requestor.Success, late.Verdict)
	assert.Contains(t, late.Reason, "not used")
	assert.Equal(t, "c2", e.part(2).Accepted)
}

func TestResultsInPartOrder(t *testing.T) {
	e := newEnv(t, 1, 3, parts(3, nil))
	for i := range 3 {
		e.next(fmt.Sprint("s", i), "n")
	}
	for _, i := range []int{2, 0, 1} {
		e.verify(fmt.Sprint("s", i), taskstore.Check{Verdict: requestor.Success, Hash: "h", File: fmt.Sprint("f", i)})
	}
	var got []taskstore.Result
	require.NoError(t, e.s.Results(func(r taskstore.Result) error { got = append(got, r); return nil }))
	require.Len(t, got, 3)
	for i, r := range got {
		assert.Equal(t, i, r.Part)
		assert.Equal(t, fmt.Sprint("s", i), r.SubtaskID)
		assert.Equal(t, fmt.Sprint("f", i), r.File)
		assert.Equal(t, "n", r.Node)
	}
}

func TestAbortSubtaskCanFailTheTask(t *testing.T) {
	e := newEnv(t, 1, 2, parts(1, nil))
	e.next("a", "n")
	require.NoError(t, e.s.AbortSubtask("a"))
	assert.Equal(t, taskstore.TaskActive, e.task().State)
	e.next("b", "n")
	require.NoError(t, e.s.AbortSubtask("b"))
	tk := e.task()
	assert.Equal(t, taskstore.TaskFailed, tk.State)
	assert.Equal(t, "part 0 failed 2 times; last: aborted", tk.Reason)
	assert.False(t, e.pending())
}

func TestNodeExclusionAcrossParts(t *testing.T) {
	e := newEnv(t, 2, 3, parts(3, nil))
	// One node takes one replica of every part, then nothing more.
	for i := range 3 {
		assert.Equal(t, i, e.next(fmt.Sprint("a", i), "n1"))
	}
	e.none("x", "n1")
	assert.True(t, e.pending(), "other nodes may take the second replicas")
	for i := range 3 {
		assert.Equal(t, i, e.next(fmt.Sprint("b", i), "n2"))
	}
	assert.False(t, e.pending())
	e.none("y", "n3")
}

func TestDiscardAVote(t *testing.T) {
	e := newEnv(t, 2, 3, parts(1, nil))
	e.next("a", "n1")
	e.next("b", "n2")
	e.verify("a", vote("h"))
	ids, err := e.s.Discard([]string{"a", "b"})
	require.NoError(t, err)
	assert.Equal(t, []string{"a"}, ids, "b holds no result yet")
	p := e.part(0)
	assert.Equal(t, 0, p.Votes)
	assert.Equal(t, []string{"b"}, p.Live)
	assert.True(t, p.Computable)
	assert.Equal(t, 0, p.Attempts)
	e.next("c", "n1") // n1 no longer holds the part
	assert.Equal(t, requestor.AwaitingData, e.verify("b", vote("h")).Verdict)
	assert.Equal(t, requestor.Success, e.verify("c", vote("h")).Verdict)
}

func TestAbortTaskMarksTheRest(t *testing.T) {
	e := newEnv(t, 1, 3, parts(3, nil))
	e.next("a", "n")
	e.verify("a", accept)
	e.next("b", "n")
	ok, err := e.s.AbortTask()
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, taskstore.Success, e.part(0).State, "an accepted part stays accepted")
	assert.Equal(t, taskstore.Aborted, e.part(1).State)
	assert.Equal(t, taskstore.Aborted, e.part(2).State)
	assert.Equal(t, taskstore.Aborted, e.sub("b").State)
	assert.Equal(t, "task aborted", e.sub("b").Reason)
	_, err = e.s.BeginVerify("a")
	assert.ErrorIs(t, err, requestor.ErrTaskAborted)
}

func TestBeginVerify(t *testing.T) {
	e := newEnv(t, 2, 3, parts(1, nil))
	e.next("a", "n1")
	p, err := e.s.BeginVerify("a")
	require.NoError(t, err)
	assert.Nil(t, p.Answer)
	assert.True(t, p.Check, "a fresh result is checked by the app")
	assert.Equal(t, "n1", p.Node)
	assert.JSONEq(t, `{"i":0}`, string(p.Params))
	e.verify("a", vote("h"))
	p, err = e.s.BeginVerify("a")
	require.NoError(t, err)
	assert.False(t, p.Check, "a vote is only counted again")
	e.next("b", "n2")
	e.verify("b", vote("h"))
	p, err = e.s.BeginVerify("a")
	require.NoError(t, err)
	require.NotNil(t, p.Answer)
	assert.Equal(t, requestor.Success, p.Answer.Verdict)
	assert.True(t, p.Merging)
}
