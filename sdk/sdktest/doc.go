// Package sdktest runs a whole task of an sdk.App inside a test: Split,
// every part computed and verified, Merge, with no sockets and no
// processes, and with faults injected into chosen attempts so that the
// app's Verify is tested on results that are wrong.
//
// Run calls the SDK's own requestor and provider Handlers (sdk.NewRequestor
// and sdk.NewProvider) on temp dirs with the contract's layout, through the
// same loop a host runs: fresh subtask ids, one node id per provider slot,
// resources copied to a fresh provider dir for each attempt, the single
// result copied back into subtask_outputs/, and the verdicts acted on (a
// rejected part is given out again, a replica computed for redundancy, a
// result awaiting data verified again). It fails the test with the log of
// every subtask when the task does not finish.
//
// A worked example: an app that squares numbers, and its test.
//
//	type Params struct{ N int } // the task: square 0..N-1
//	type Part struct{ X int }   // one part: square X
//
//	type squares struct{}
//
//	func (squares) Split(ctx context.Context, t *sdk.Task[Params]) ([]sdk.Part[Part], error) {
//		var parts []sdk.Part[Part]
//		for x := range t.Params.N {
//			parts = append(parts, sdk.Part[Part]{Params: Part{X: x}})
//		}
//		return parts, nil
//	}
//
//	func (squares) Compute(ctx context.Context, s *sdk.Subtask[Part]) (string, error) {
//		out, err := s.OutputPath("square.txt")
//		if err != nil {
//			return "", err
//		}
//		return out, os.WriteFile(out, []byte(strconv.Itoa(s.Params.X*s.Params.X)), 0o644)
//	}
//
//	func (squares) Verify(ctx context.Context, r *sdk.Result[Params, Part]) (sdk.Verdict, error) {
//		b, err := os.ReadFile(r.File)
//		if err != nil {
//			return sdk.Verdict{}, err
//		}
//		if got, err := strconv.Atoi(string(b)); err != nil || got != r.Params.X*r.Params.X {
//			return sdk.Reject("%q is not %d squared", b, r.Params.X), nil
//		}
//		return sdk.Accept(), nil
//	}
//
//	func (squares) Merge(ctx context.Context, t *sdk.Task[Params], rs []*sdk.Result[Params, Part]) error {
//		var b strings.Builder
//		for _, r := range rs {
//			sq, _ := os.ReadFile(r.File)
//			fmt.Fprintf(&b, "%s\n", sq)
//		}
//		return os.WriteFile(filepath.Join(t.Dir.Outputs(), "squares.txt"), []byte(b.String()), 0o644)
//	}
//
//	func TestSquares(t *testing.T) {
//		res := sdktest.Run(t, squares{}, Params{N: 4},
//			// The first attempt at part 2 comes back altered: Verify must
//			// reject it, and the part is computed again on another node.
//			sdktest.Faults(sdktest.At(2, 1, sdktest.Wrong)))
//		require.Equal(t, "0\n1\n4\n9\n", string(res.Files["squares.txt"]))
//		first := res.Attempts(2)[0]
//		require.Equal(t, sdktest.Wrong, first.Fault)
//		require.Equal(t, requestor.Failure, first.Verdict, res.Log())
//	}
//
// Faults are chosen per attempt: At names one (part, attempt); Rate picks
// attempts at random, reproducibly, from a seed; a FaultPlan of your own
// can decide anything from the part and the attempt number. The kinds:
// Error (Compute fails), Wrong (the result's bytes are altered), Missing
// (no result file reaches Verify) and Hang (Compute blocks until the
// attempt's deadline, AttemptTimeout).
//
// Run runs the app in the test's process, so it does not test what only a
// process shows (the command line, the wire, a crash); the SDK's own tests
// do that with real processes.
package sdktest
