// Package testdriver drives one whole task through an app the way a host
// does, for tests: CreateTask once, then NextSubtask, Compute on a fresh
// one-shot provider, Verify, and the verdicts acted on, until nothing is
// pending. It is a small, serial driver, not a scheduler: the host's Runner
// (host.Run) is the scheduler, with slots, backups, chaos and events.
//
// It stays beside host.Run because the SDK's own tests need a driver: the
// layers import downward only, and package sdk/sdktest, where app authors
// simulate a task in process with faults chosen per attempt, sits below
// host. The crash tests of the SDK's state store (kill the requestor at a
// chosen step, restart it over the same work dir) use it for the same
// reason. Tests above the SDK (examples, the CLI) use host.Run.
//
// Run drives real processes of one app executable over gRPC (package
// appmain's command line); RunWith drives any Backend, such as Handlers in
// process (package sdktest does). In both, one goroutine calls the
// requestor, and each provider slot computes on a goroutine of its own:
//
//	out, err := testdriver.Run(ctx, testdriver.Config{
//		Bin:       os.Args[0],            // the test binary, re-executed as the app
//		Env:       []string{"MY_APP=1"},  // which TestMain turns into the app
//		WorkDir:   t.TempDir(),
//		TaskID:    "t1",
//		Params:    json.RawMessage(`{"parts": 3}`),
//		Providers: 2,
//		Fault: func(a testdriver.Assignment) testdriver.Fault {
//			if a.Part == 1 && a.Attempt == 1 {
//				return testdriver.FaultWrong // Verify must reject it
//			}
//			return testdriver.NoFault
//		},
//	})
//	// out.Finished, out.Outputs, out.Verdicts[requestor.Failure] == 1, ...
//
// How the verdicts are acted on: SUCCESS is done; FAILURE leaves the part
// to come back through NextSubtask; INCONCLUSIVE goes on (the app makes a
// replica pending); AWAITING_DATA verifies that result again after the next
// verification of another one. A compute error (a provider that failed,
// hung past Config.ComputeTimeout or named a bad output) is answered with
// AbortSubtask, so that the part can be given out again. The run ends when
// HasPendingSubtasks answers false with nothing in flight or awaiting data;
// when nothing can change any more but it is not over, Run fails with
// ErrStuck rather than waiting for ctx.
//
// Crash tests: Config.OnEvent is called after each step; returning
// RestartRequestor from it kills the requestor with SIGKILL and starts a
// new one over the same work dir, and the loop goes on. A requestor that
// dies by itself during a call raises a RequestorDied event; restarting
// then makes the call again (after NextSubtask, the subtask it may have
// stored is aborted first).
package testdriver
