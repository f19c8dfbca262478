// Package client is the Go client of the gtask daemon (`gtask serve`), for
// programs, and for tasks that create child tasks. It speaks the
// gtask.host.v1 API (gen/gtask/host/v1), whose comments are the contract.
//
// Dial connects to a daemon with a token, sent with every call as
// "authorization: Bearer TOKEN", over plaintext: the daemon listens on
// loopback. FromEnv does the same from the environment: GTASK_HOST (the
// address; 127.0.0.1:7878 when unset) and GTASK_FAMILY_TOKEN, the token a
// task's requestor gets (acting for the task's owner, within its tree: the
// tasks it submits are its children), or GTASK_TOKEN, a user's.
//
// A task is submitted with Submit: its inputs, local files, are uploaded
// (or, with InputsByPath, named for the daemon to read on this machine).
// Wait waits for it to end in any state, riding out a restart of the
// daemon (it resumes the task; Wait polls with back-off until it answers
// again) but giving up, with an *UnreachableError, on a daemon that is
// gone; Results writes its outputs under a directory, refusing any name
// that would land outside it. Watch, Logs, List, Get and Kill follow,
// read, list, look at and kill tasks.
//
// A worked example, the average of a column over two CSV files:
//
//	c, err := client.Dial(ctx, "127.0.0.1:7878", os.Getenv("GTASK_TOKEN"))
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	task, err := c.Submit(ctx, client.SubmitRequest{
//		App:    "./examples/average",
//		Params: json.RawMessage(`{"column": "age"}`),
//		Inputs: []string{"org1.csv", "org2.csv"},
//	})
//	if err != nil {
//		return err
//	}
//	task, err = c.Wait(ctx, task.GetTaskId())
//	if err != nil {
//		return err // the daemon was unreachable for 2 minutes, or ctx ended
//	}
//	if task.GetState() != hostv1.TaskState_TASK_STATE_FINISHED {
//		return fmt.Errorf("task %s %s: %s", task.GetTaskId(), task.GetState(), task.GetReason())
//	}
//	files, err := c.Results(ctx, task.GetTaskId(), "out") // out/result.json: {"average": 53.25}
//
// Errors of calls the daemon answered carry its gRPC status (status.Code
// finds it through the wrapping): NOT_FOUND for an unknown task (or
// another user's), UNAUTHENTICATED for a missing or unknown token,
// PERMISSION_DENIED for a family token reaching outside its tree,
// UNAVAILABLE when the daemon cannot be reached.
package client
