// Package crashtest holds the SDK's crash tests and nothing else: a small
// SDK app run as real requestor processes (the test binary, re-executed)
// is killed with SIGKILL at many points of a task, or kills itself inside
// Split, Verify or Merge, and restarted over the same work dir each time;
// the task must still finish with the right output, and no verified result
// may be lost or recomputed.
//
// The tests live in a package of their own so that their re-executing
// TestMain is the only one in its test binary.
package crashtest
