// Package requestor serves the RequestorApp service of the Golem Task API
// (golem_task_api.proto) over a Handler: the long-running, requestor-side
// half of an app, one server per requestor work dir, serving many tasks at
// once. App authors normally reach it through the SDK; this package is the
// low-level layer whose Handler mirrors the RPCs one to one.
//
// # A worked example
//
// A Handler for an app whose every task is one subtask:
//
//	type single struct {
//		mu    sync.Mutex
//		given map[string]bool // task id -> its subtask was handed out
//	}
//
//	func (a *single) CreateTask(ctx context.Context, taskID string, _ int, _ json.RawMessage) (requestor.Task, error) {
//		a.mu.Lock()
//		defer a.mu.Unlock()
//		if _, ok := a.given[taskID]; ok {
//			return requestor.Task{}, fmt.Errorf("task %q: %w", taskID, requestor.ErrTaskExists)
//		}
//		a.given[taskID] = false
//		return requestor.Task{EnvID: taskapi.DockerCPUEnvID()}, nil
//	}
//
//	func (a *single) NextSubtask(ctx context.Context, taskID, subtaskID, nodeID string) (*requestor.Subtask, error) {
//		a.mu.Lock()
//		defer a.mu.Unlock()
//		given, ok := a.given[taskID]
//		if !ok {
//			return nil, fmt.Errorf("task %q: %w", taskID, requestor.ErrUnknownTask)
//		}
//		if given {
//			return nil, nil // nothing for this node now
//		}
//		a.given[taskID] = true
//		return &requestor.Subtask{Params: json.RawMessage(`{"part":0}`)}, nil
//	}
//
//	func (a *single) Verify(ctx context.Context, taskID, subtaskID string) (requestor.Verdict, string, error) {
//		return requestor.Success, "looks right", nil
//	}
//
//	// ... DiscardSubtasks, RunBenchmark, HasPendingSubtasks, AbortTask,
//	// AbortSubtask and Shutdown likewise.
//
// and its main:
//
//	lis, err := net.Listen("tcp", "127.0.0.1:50005")
//	if err != nil { ... }
//	srv := requestor.NewServer(&single{given: map[string]bool{}}, requestor.WithLogger(logger))
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//	defer stop()
//	if err := srv.Serve(ctx, lis); err != nil { ... exit 1 }
//
// See Example for the same, driven through the generated client.
//
// # What the server does before and after the Handler
//
// Every request is validated before any Handler method runs; a malformed
// field is answered INVALID_ARGUMENT with a message naming it, and the
// Handler is not called:
//   - task_id, subtask_id and each of subtask_ids (named "subtask_ids[i]")
//     must pass taskapi.ValidateID, because ids become directory names. An
//     empty subtask_ids list is valid and still reaches the Handler (which
//     answers NOT_FOUND for an unknown task, or nothing discarded).
//   - opaque_node_id is opaque and never a path, so it may hold '/', "." or
//     "..", but it must be non-empty (an app that remembers which node
//     failed a task could not tell nodes apart otherwise), valid UTF-8, at
//     most taskapi.MaxIDLen bytes and free of control characters (apps log
//     it and key state by it).
//   - task_params_json must be empty or valid UTF-8 JSON (taskapi.ValidateJSON);
//     the message gives the parse error's byte offset. Empty reaches
//     CreateTask as nil params.
//   - max_subtasks_count must not be negative; 0 lets the app choose.
//
// A Handler's error reaches the caller as a status: a sentinel of this
// package (or any status error), even wrapped with %w, keeps its code and
// carries the whole wrapped message; a *taskapi.FieldError is
// INVALID_ARGUMENT; ctx's error is CANCELED or DEADLINE_EXCEEDED; anything
// else, and a panic, is INTERNAL, and the server goes on serving.
//
// Replies are checked too, because a host would act on them: a Verdict that
// is not one of the four (the zero Verdict above all) is INTERNAL, never
// SUCCESS, and VerifyReply.result is always set from the Verdict.
// Task.Prerequisites and Subtask.Params that are not valid JSON are
// INTERNAL; nil or empty sends the empty string, the contract's "none". A nil
// *Subtask answers an empty NextSubtaskReply (subtask not set).
//
// # Lifecycle
//
// Health (grpc.health.v1, empty service name) is SERVING while Serve serves
// and turns NOT_SERVING as soon as a stop is asked for, before the stop
// begins. Three things stop the server, all the same way: Serve's ctx ending,
// the Shutdown RPC (which answers first; the stop happens after) and
// Server.Shutdown. Calls in flight get the grace period (WithGracePeriod) to
// finish, then their contexts are cancelled.
//
// Handler.Shutdown is called exactly once, after the grpc server has
// stopped, whatever stopped it, and after the last Handler call has
// returned; a handler deaf to its cancelled context is waited for one more
// grace period, then given up on (and logged), so that it cannot keep the
// process alive. Handler.Shutdown's context carries the values of the
// context that stopped the server, not its cancellation, and ends after the
// grace period.
//
// Server.Conn calls the same server in process, without a network, for a
// host that runs the app inside itself: every rule above holds for its
// calls too, and a stop treats them as it treats calls over gRPC.
//
// Handler.Shutdown's error is logged and returned, wrapped, both by Serve
// (joined to any serving error) and by every Server.Shutdown call: a stop
// whose app failed to close what it holds is worth a non-zero exit, even
// after a Shutdown RPC (whose contract is exit 0 when all went well).
package requestor
