package sdktest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
	"github.com/gtask/gtask/sdk/sdktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// params are the squares app's task: square Offset+0 .. Offset+N-1, where
// Offset is read from the task input OffsetFile when set.
type params struct {
	N          int    `json:"n"`
	OffsetFile string `json:"offset_file,omitempty"`
	// PanicPart, when set, makes Compute panic for that part.
	PanicPart *int `json:"panic_part,omitempty"`
}

type part struct {
	X     int  `json:"x"`
	Panic bool `json:"panic,omitempty"`
}

// offsetSquares is the test app. Split writes the offset into a resource, so
// that Compute reads its input through the provider's subtask_inputs/.
type offsetSquares struct{}

func (offsetSquares) Split(_ context.Context, t *sdk.Task[params]) ([]sdk.Part[part], error) {
	if t.Params.N < 1 {
		return nil, fmt.Errorf("%w: n must be at least 1", sdk.ErrInvalidParams)
	}
	offset := 0
	if t.Params.OffsetFile != "" {
		b, err := os.ReadFile(filepath.Join(t.Dir.Inputs(), t.Params.OffsetFile))
		if err != nil {
			return nil, err
		}
		if offset, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return nil, fmt.Errorf("%w: offset file: %v", sdk.ErrInvalidParams, err)
		}
	}
	if err := os.WriteFile(filepath.Join(t.Dir.SubtaskInputs(), "offset.txt"), []byte(strconv.Itoa(offset)), 0o644); err != nil {
		return nil, err
	}
	var parts []sdk.Part[part]
	for x := range t.Params.N {
		parts = append(parts, sdk.Part[part]{
			Params:    part{X: x, Panic: t.Params.PanicPart != nil && *t.Params.PanicPart == x},
			Resources: []string{"offset.txt"},
		})
	}
	return parts, nil
}

func (offsetSquares) Compute(_ context.Context, s *sdk.Subtask[part]) (string, error) {
	if s.Params.Panic {
		panic("the app's bug")
	}
	b, err := os.ReadFile(s.Dir.Input("offset.txt"))
	if err != nil {
		return "", err
	}
	offset, err := strconv.Atoi(string(b))
	if err != nil {
		return "", err
	}
	out, err := s.OutputPath("square.txt")
	if err != nil {
		return "", err
	}
	x := offset + s.Params.X
	return out, os.WriteFile(out, []byte(strconv.Itoa(x*x)), 0o644)
}

func (offsetSquares) Verify(_ context.Context, r *sdk.Result[params, part]) (sdk.Verdict, error) {
	b, err := os.ReadFile(r.File)
	if err != nil {
		return sdk.Reject("no result: %v", err), nil
	}
	got, err := strconv.Atoi(string(b))
	if err != nil {
		return sdk.Reject("%q is not a number", b), nil
	}
	if got < 0 {
		return sdk.Reject("%d is negative", got), nil
	}
	// A cheap check a real app could make: a square's root is whole.
	if root := isqrt(got); root*root != got {
		return sdk.Reject("%d is not a square", got), nil
	}
	return sdk.Accept(), nil
}

func isqrt(n int) int {
	r := 0
	for (r+1)*(r+1) <= n {
		r++
	}
	return r
}

func (offsetSquares) Merge(_ context.Context, t *sdk.Task[params], rs []*sdk.Result[params, part]) error {
	var b strings.Builder
	for _, r := range rs {
		sq, err := os.ReadFile(r.File)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s\n", sq)
	}
	return os.WriteFile(filepath.Join(t.Dir.Outputs(), "squares.txt"), []byte(b.String()), 0o644)
}

func squaresText(offset, n int) string {
	var b strings.Builder
	for x := range n {
		fmt.Fprintf(&b, "%d\n", (offset+x)*(offset+x))
	}
	return b.String()
}

func TestRunHonest(t *testing.T) {
	res := sdktest.Run(t, offsetSquares{}, params{N: 4})
	assert.Equal(t, map[string][]byte{"squares.txt": []byte(squaresText(0, 4))}, res.Files)
	assert.DirExists(t, res.OutputsDir)
	require.Len(t, res.Subtasks, 4, res.Log())
	parts := map[int]bool{}
	for _, s := range res.Subtasks {
		parts[s.Part] = true
		assert.Equal(t, 1, s.Attempt)
		assert.Equal(t, requestor.Success, s.Verdict)
		assert.Equal(t, sdktest.NoFault, s.Fault)
		assert.NoError(t, s.ComputeErr)
		assert.NotEmpty(t, s.ID)
		assert.Regexp(t, `^node-[0-2]$`, s.Node)
	}
	assert.Len(t, parts, 4)
}

func TestRunInputs(t *testing.T) {
	in := filepath.Join(t.TempDir(), "offset")
	require.NoError(t, os.WriteFile(in, []byte("10\n"), 0o644))
	res := sdktest.Run(t, offsetSquares{}, params{N: 3, OffsetFile: "offset"}, sdktest.Inputs(in), sdktest.Providers(1))
	assert.Equal(t, squaresText(10, 3), string(res.Files["squares.txt"]))
	for _, s := range res.Subtasks {
		assert.Equal(t, "node-0", s.Node)
	}
}

// TestRunFaultsAt: each kind of fault, on the first attempt at a part of
// its own; the part is computed again and the task finishes right.
func TestRunFaultsAt(t *testing.T) {
	res := sdktest.Run(t, offsetSquares{}, params{N: 5},
		sdktest.Faults(
			sdktest.At(1, 1, sdktest.Wrong),
			sdktest.At(2, 1, sdktest.Missing),
			sdktest.At(3, 1, sdktest.Error),
			sdktest.At(4, 1, sdktest.Hang),
		),
		sdktest.AttemptTimeout(200*time.Millisecond))
	assert.Equal(t, squaresText(0, 5), string(res.Files["squares.txt"]))

	require.Len(t, res.Attempts(0), 1, res.Log())
	for p, f := range map[int]sdktest.Fault{1: sdktest.Wrong, 2: sdktest.Missing, 3: sdktest.Error, 4: sdktest.Hang} {
		got := res.Attempts(p)
		require.Len(t, got, 2, "part %d: the faulty attempt and one more\n%s", p, res.Log())
		first, second := got[0], got[1]
		assert.Equal(t, f, first.Fault)
		assert.Equal(t, 1, first.Attempt)
		assert.Equal(t, 2, second.Attempt)
		assert.Equal(t, sdktest.NoFault, second.Fault)
		assert.Equal(t, requestor.Success, second.Verdict)
		assert.NotEqual(t, first.Node, second.Node, "part %d is computed again on another node\n%s", p, res.Log())
		switch f {
		case sdktest.Wrong, sdktest.Missing:
			assert.NoError(t, first.ComputeErr)
			assert.Equal(t, requestor.Failure, first.Verdict, "part %d: Verify rejects a %s result\n%s", p, f, res.Log())
		case sdktest.Error:
			assert.Error(t, first.ComputeErr)
			assert.False(t, first.Verdict.Valid(), "a failed compute is not verified")
		case sdktest.Hang:
			assert.ErrorIs(t, first.ComputeErr, context.DeadlineExceeded)
		}
	}
}

func TestRunFaultRateIsReproducible(t *testing.T) {
	run := func() *sdktest.Result {
		return sdktest.Run(t, offsetSquares{}, params{N: 8},
			sdktest.Faults(sdktest.Rate(0.4, 7)),
			sdktest.SDKOptions(sdk.WithMaxAttempts(20)))
	}
	faults := func(r *sdktest.Result) map[[2]int]sdktest.Fault {
		m := map[[2]int]sdktest.Fault{}
		for _, s := range r.Subtasks {
			m[[2]int{s.Part, s.Attempt}] = s.Fault
		}
		return m
	}
	a, b := run(), run()
	assert.Equal(t, squaresText(0, 8), string(a.Files["squares.txt"]))
	assert.Equal(t, faults(a), faults(b), "the same seed faults the same attempts\n%s\n%s", a.Log(), b.Log())
	injected := 0
	for _, f := range faults(a) {
		if f != sdktest.NoFault {
			injected++
		}
	}
	assert.Positive(t, injected, "a rate of 0.4 over 8 parts injects something\n%s", a.Log())
}

func TestRate(t *testing.T) {
	always := sdktest.Rate(1, 1, sdktest.Hang)
	never := sdktest.Rate(0, 1)
	for p := range 10 {
		for a := 1; a <= 3; a++ {
			assert.Equal(t, sdktest.Hang, always(p, a))
			assert.Equal(t, sdktest.NoFault, never(p, a))
		}
	}
	kinds := map[sdktest.Fault]bool{}
	plan := sdktest.Rate(1, 42)
	for p := range 100 {
		kinds[plan(p, 1)] = true
		assert.Equal(t, plan(p, 1), plan(p, 1), "a plan is a function of part and attempt")
	}
	assert.Equal(t, map[sdktest.Fault]bool{sdktest.Error: true, sdktest.Wrong: true, sdktest.Missing: true}, kinds,
		"the default kinds leave Hang out")
}

func TestRunRedundancy(t *testing.T) {
	res := sdktest.Run(t, offsetSquares{}, params{N: 3}, sdktest.SDKOptions(sdk.WithRedundancy(2)))
	assert.Equal(t, squaresText(0, 3), string(res.Files["squares.txt"]))
	nodes := map[int]map[string]bool{}
	for _, s := range res.Subtasks {
		if nodes[s.Part] == nil {
			nodes[s.Part] = map[string]bool{}
		}
		nodes[s.Part][s.Node] = true
	}
	for p := range 3 {
		assert.Len(t, nodes[p], 2, "part %d computed on two distinct nodes\n%s", p, res.Log())
	}
}

// fatalTB is a testing.TB whose Fatalf records the message and ends the
// goroutine, as the real one does, so that a test can check that Run fails
// its test.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalTB) Helper() {}

// runFailing runs fn on a goroutine of its own with a fatalTB and returns
// what it passed to Fatalf ("" when it did not fail).
func runFailing(t *testing.T, fn func(testing.TB)) string {
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(tb)
	}()
	<-done
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.msg
}

func TestRunFailsTheTest(t *testing.T) {
	t.Run("every attempt wrong", func(t *testing.T) {
		msg := runFailing(t, func(tb testing.TB) {
			sdktest.Run(tb, offsetSquares{}, params{N: 2}, sdktest.Faults(sdktest.Rate(1, 1, sdktest.Wrong)))
		})
		assert.Contains(t, msg, "sdktest: the task did not finish")
		assert.Contains(t, msg, "wrong", "the message holds the subtask log")
	})
	t.Run("panicking Compute", func(t *testing.T) {
		one := 1
		msg := runFailing(t, func(tb testing.TB) {
			sdktest.Run(tb, offsetSquares{}, params{N: 2, PanicPart: &one})
		})
		assert.Contains(t, msg, "sdktest: the task did not finish")
		assert.Contains(t, msg, "the app's bug", "the panic is in the log")
	})
	t.Run("refused params", func(t *testing.T) {
		msg := runFailing(t, func(tb testing.TB) {
			sdktest.Run(tb, offsetSquares{}, params{N: 0})
		})
		assert.Contains(t, msg, "n must be at least 1")
	})
}

func TestFaultString(t *testing.T) {
	for f, want := range map[sdktest.Fault]string{
		sdktest.NoFault: "none", sdktest.Error: "error", sdktest.Wrong: "wrong",
		sdktest.Missing: "missing", sdktest.Hang: "hang", sdktest.Fault(9): "Fault(9)",
	} {
		assert.Equal(t, want, f.String())
	}
}
