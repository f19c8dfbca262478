package sdktest_test

// This file is the worked example of doc.go, verbatim, so that it compiles
// and passes.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
	"github.com/gtask/gtask/sdk/sdktest"
)

type Params struct{ N int } // the task: square 0..N-1
type Part struct{ X int }   // one part: square X

type squares struct{}

func (squares) Split(ctx context.Context, t *sdk.Task[Params]) ([]sdk.Part[Part], error) {
	var parts []sdk.Part[Part]
	for x := range t.Params.N {
		parts = append(parts, sdk.Part[Part]{Params: Part{X: x}})
	}
	return parts, nil
}

func (squares) Compute(ctx context.Context, s *sdk.Subtask[Part]) (string, error) {
	out, err := s.OutputPath("square.txt")
	if err != nil {
		return "", err
	}
	return out, os.WriteFile(out, []byte(strconv.Itoa(s.Params.X*s.Params.X)), 0o644)
}

func (squares) Verify(ctx context.Context, r *sdk.Result[Params, Part]) (sdk.Verdict, error) {
	b, err := os.ReadFile(r.File)
	if err != nil {
		return sdk.Verdict{}, err
	}
	if got, err := strconv.Atoi(string(b)); err != nil || got != r.Params.X*r.Params.X {
		return sdk.Reject("%q is not %d squared", b, r.Params.X), nil
	}
	return sdk.Accept(), nil
}

func (squares) Merge(ctx context.Context, t *sdk.Task[Params], rs []*sdk.Result[Params, Part]) error {
	var b strings.Builder
	for _, r := range rs {
		sq, _ := os.ReadFile(r.File)
		fmt.Fprintf(&b, "%s\n", sq)
	}
	return os.WriteFile(filepath.Join(t.Dir.Outputs(), "squares.txt"), []byte(b.String()), 0o644)
}

func TestSquares(t *testing.T) {
	res := sdktest.Run(t, squares{}, Params{N: 4},
		// The first attempt at part 2 comes back altered: Verify must
		// reject it, and the part is computed again on another node.
		sdktest.Faults(sdktest.At(2, 1, sdktest.Wrong)))
	require.Equal(t, "0\n1\n4\n9\n", string(res.Files["squares.txt"]))
	first := res.Attempts(2)[0]
	require.Equal(t, sdktest.Wrong, first.Fault)
	require.Equal(t, requestor.Failure, first.Verdict, res.Log())
}
