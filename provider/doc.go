// Package provider serves the ProviderApp side of the Golem Task API: a
// one-shot gRPC server around a Handler that an app implements (the SDK
// provides one; most apps never touch this package directly).
//
// A provider process lives for one request. The host launches it in the task
// work dir of one subtask, waits for health SERVING, sends one Compute (or
// RunBenchmark), and the server sends the reply and then stops by itself:
// Serve returns nil and the process exits 0. The rules the server enforces
// around the Handler:
//
//   - A second Compute or RunBenchmark, while the first runs or after it, is
//     refused with codes.FailedPrecondition and never reaches the Handler. A
//     request refused for a malformed field is still the one request: the
//     host treats it as the subtask's failure and launches a fresh provider.
//   - task_id and subtask_id are checked with taskapi.ValidateID and
//     subtask_params_json with taskapi.ValidateJSON before the Handler runs
//     (codes.InvalidArgument naming the field); an empty JSON string reaches
//     the Handler as nil params.
//   - The path Compute answers must be a non-empty relative path that stays
//     inside the task work dir once cleaned ("out/r.png", not "/etc/passwd",
//     "../x" or "a/../../x"); otherwise codes.Internal naming it. The check is
//     lexical, so the server needs no work dir of its own: the host, which
//     copies the file back, checks that it exists. The reply carries the
//     cleaned path.
//   - The Shutdown RPC (and Server.Shutdown, and the end of Serve's ctx)
//     cancels the Handler's context; the request answers codes.Canceled, and
//     the server stops once the Handler has returned. A Handler that ignores
//     its context gets the grace period (WithGracePeriod); then the request
//     answers codes.Canceled anyway (or the host sees the connection close),
//     the server stops, and the Handler is left running for the process's
//     exit to end.
//   - Health is SERVING from Serve until the server begins to stop, then
//     NOT_SERVING; a request arriving while it stops is codes.Unavailable.
//
// Errors from the Handler map to codes as documented on Handler; a panic is
// codes.Internal. Server.Conn calls the same server in process, without a
// network, for a host that runs the app inside itself, under the same
// rules: one call, and the server stops after it.
//
// A minimal provider process (appmain does this, plus arguments, TLS and
// signals, for real apps):
//
//	lis, err := net.Listen("tcp", "127.0.0.1:50006")
//	if err != nil {
//		return err
//	}
//	srv := provider.NewServer(myHandler{workDir: dir}, provider.WithLogger(log))
//	return srv.Serve(ctx, lis) // nil once the one request has been answered
package provider
