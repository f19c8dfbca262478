// Package daemon is the core of `gtask serve`: HostService (package
// gen/gtask/host/v1), which runs tasks for its users with host.Run, one
// goroutine per running task, and keeps everything it knows in its data
// dir, so that a daemon stopped (Close) or killed (kill -9, a crash)
// resumes its tasks at the next Start.
//
// # A worked example
//
//	lis, _ := net.Listen("tcp", "127.0.0.1:7070")
//	d, err := daemon.Open(ctx, daemon.Config{DataDir: dataDir, HostAddr: lis.Addr().String()})
//	if err != nil {
//		return err // another daemon holds the data dir, say
//	}
//	if tok := d.AdminToken(); tok != "" {
//		fmt.Println("admin token:", tok) // first start only: it is kept hashed
//	}
//	srv := grpc.NewServer()
//	d.Register(srv)
//	go srv.Serve(lis)
//	if err := d.Start(ctx); err != nil { // resumes what was running
//		return err
//	}
//	<-ctx.Done()
//	d.Close(context.Background()) // first: streams end, processes go
//	srv.GracefulStop()
//
// A client, with a token ("authorization: Bearer TOKEN"):
//
//	c := hostv1.NewHostServiceClient(conn)
//	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
//	resp, _ := c.CreateTask(ctx, &hostv1.CreateTaskRequest{
//		App:        "/src/gtask/examples/average", // built into Config.CacheDir
//		ParamsJson: `{"column": "age"}`,
//		Inputs: []*hostv1.Input{
//			{Name: "org1.csv", Source: &hostv1.Input_Path{Path: "/data/org1.csv"}},
//			{Name: "org2.csv", Source: &hostv1.Input_UploadId{UploadId: up}}, // UploadInput's
//		},
//	})
//	// WatchTask(task_id) streams task_queued, run_started, the run's
//	// events (task_created, subtask_assigned, ...), task_ended; then
//	// GetResults streams task_outputs/result.json: {"average": 53.25}.
//
// # Data dir
//
//	gtask.db          the store (bbolt): tokens, tasks, events, uploads
//	tasks/ID/         task ID's host.RunConfig.WorkDir: requestor/, logs/, events.jsonl...
//	staged/ID/        task ID's inputs, copied (an upload: linked) at CreateTask
//	uploads/UID       uploaded files, kept Config.UploadTTL (see Uploads)
//
// bbolt locks gtask.db: one Daemon per data dir at a time. `gtask token
// create` on a stopped daemon opens it, calls CreateToken and closes it.
//
// # Store and durability
//
// Tokens are kept as SHA-256 hashes only: {user, admin, family task}; of
// a family token whose task has ended, only the hash and the task's id,
// to refuse it by name. A task record holds its app, runtime, owner,
// parent and children, params, staged inputs, options, state, reason,
// times, last progress, outputs, number of starts, its family tokens'
// hashes and, once a KillTask decided to kill it, the kill's reason.
// Events (the runs' host.Events, converted, and the daemon's own
// task_queued, run_started, run_resumed, task_killed, task_ended) are
// appended under a cursor that increases across all tasks.
//
// One goroutine writes the store. Every state change and event is
// committed (fsync) before anyone can see it; writes queued while a commit
// runs go together in the next one, so a busy task, whose events the run
// hands over without waiting, pays one fsync per burst, not per event. A
// state change and the event saying it (task_ended and the final state,
// say) are committed together.
//
// # Identity
//
// Every call needs "authorization: Bearer TOKEN": missing or unknown is
// UNAUTHENTICATED. Another user's task is NOT_FOUND. An admin token sees
// every task and may CreateToken. A family token (GTASK_FAMILY_TOKEN, made
// fresh for each start of a task's requestor) acts for the task's owner
// within the task's tree: any task outside it is PERMISSION_DENIED, and
// the tasks it creates are children of its task unless it names a
// descendant as parent_id. A family token ends with its task: the commit
// that stores the task FINISHED, FAILED, ABORTED or KILLED deletes it, and
// from then on a call with it is UNAUTHENTICATED, "the family token of
// task ID is no longer valid: the task has ended (killed)...".
// UNAUTHENTICATED rather than PERMISSION_DENIED because the token itself
// has expired, for every call, rather than the right to one call: the
// CLI then says the daemon refused the token. The task's own Merge, which
// runs before the task is stored ended, still has it (examples/sweep
// reads its children's results so). A family token an older gtask stored,
// and kept after its task ended, is refused the same, and deleted at the
// next Start. An upload is usable by its uploader's user only.
//
// # Running a task
//
// CreateTask checks the request (app required, and present on this
// machine for RUNTIME_PROCESS; params JSON; inputs with plain unique
// names, each a known upload of the caller's user or an absolute path to a
// readable regular file; a parent the caller sees that has not ended),
// stages the inputs, stores the task QUEUED (task_queued) and starts its
// run: a goroutine of the daemon that resolves the app (a Go package
// directory is built into Config.CacheDir, one build at a time; a bad app
// ends the task FAILED), stores it RUNNING (run_started, or
// run_resumed after a restart; in the same commit as the family token of
// a RUNTIME_PROCESS requestor) and calls host.Run with WorkDir
// tasks/ID/, TaskID ID, the staged inputs, Providers the request's (at
// most, and by default, Config.Slots) and a Gate of the daemon's
// SlotPool, which shares Config.Slots provider slots fairly between the
// running tasks. At the end the task is FINISHED, FAILED or ABORTED as
// host.Run's Result says (ABORTED, with Run's error, when Run failed),
// with its outputs listed and task_ended.
//
// RUNTIME_PROCESS runs the app with host.ProcessLauncher; its requestor
// alone gets GTASK_HOST (Config.HostAddr) and GTASK_FAMILY_TOKEN, so that
// it can submit child tasks; providers do not. RUNTIME_DOCKER runs the
// image named by app with the docker launcher (package host/docker), which
// sets no environment per role: a docker requestor gets no family token,
// and cannot submit child tasks.
//
// # Uploads
//
// UploadInput stores a file in uploads/ for its user. It is reusable: any
// number of the user's CreateTask may name it, until Config.UploadTTL
// (default 24 h) after its upload; then it is removed, record and file,
// by a sweep the daemon runs at Start and then every UploadTTL/4, or
// hourly when that is longer, so that old uploads do not pile up. A task
// keeps what it took: CreateTask hard-links the upload into staged/ID/
// (or copies it, where a link fails), so removing the upload costs the
// task nothing, and a single-use upload would save no space. A CreateTask
// racing with the sweep is safe: the task is stored only if, in that very commit, its
// uploads' records still exist, and the sweep deletes the records (in one
// commit) before it removes the files, so a task stored has linked its
// input first; otherwise CreateTask is INVALID_ARGUMENT and says to upload
// the file again. Files of uploads/ that no record names (an upload cut
// short by a crash) go too, once as old as UploadTTL and at least an
// hour.
//
// # Killing
//
// KillTask(ID) marks every QUEUED or RUNNING task of ID's tree as dying
// (from then on CreateTask refuses a child under any of them,
// FAILED_PRECONDITION, as it does under any task that has ended) and
// stores that intent, in one commit, on each of them; then it cancels
// each run (cause "killed"), waits until host.Run has returned for every
// one (all their processes gone), and stores them KILLED (task_killed,
// task_ended), with reason "killed by USER" for ID and "its parent P was
// killed" below it. Tasks that had ended keep their state; the answer
// lists the tasks it killed. A task that ended by itself during the kill
// keeps its end. The kill is durable: if the daemon stops (Close, kill
// -9) once the intent is stored and before the end is, the next Start
// stores those tasks KILLED, with the same reasons and events, instead of
// resuming them.
//
// # Watching, logs, results
//
// WatchTask sends the stored events after the cursor (the task's, or its
// whole tree's, in cursor order), then each new one as it is committed,
// and ends once the task (every task of the tree) has ended and its last
// event was sent. Watchers read the store from their own cursor when a
// commit wakes them: a slow watcher slows nothing but itself. A tree
// watch reads all the events after its cursor and keeps its tree's.
//
// GetRunLogs streams tasks/ID/logs/RUN.log ("requestor", or
// "provider-SUBTASK"; any other name is INVALID_ARGUMENT) in chunks of up
// to 64 KiB from an offset; with follow, it looks for more every 100 ms
// until the task has ended, then sends the rest and ends. GetResults
// streams each output of a FINISHED task (FAILED_PRECONDITION otherwise)
// in 64 KiB chunks, at least one per file. ListTasks answers the caller's
// tasks (a family token's: its tree; an admin's: all), newest first, in
// pages (page_size 100 by default, at most 1000; the page token is the
// last task's creation number, opaque).
//
// # Stop and restart
//
// Close refuses new calls (UNAVAILABLE), ends the streams, and stops every
// run with host.ErrStopped as the cause: the providers are killed and the
// requestor stopped, but the task is not aborted in the requestor's own
// store (no AbortTask); what the run says while it stops (task_stopped,
// the last) is not stored (it is in events.jsonl: the
// task's seq jumps over it at the restart). The task stays RUNNING in the
// store. Start, on the next Open, runs every QUEUED or RUNNING task again
// with host.RunConfig.Resume (same WorkDir, same TaskID; starts+1,
// run_resumed): a gtask app's requestor reopens its state, so parts it
// had verified are not computed again; subtasks in flight are. A kill in
// progress when the daemon stopped is finished instead (see Killing): its
// tasks end KILLED and do not run again.
//
// A kill -9 of the daemon leaves the same state behind (its children die
// with it: host.ProcessLauncher sets the parent death signal), but for
// the events it had not committed yet. Those the run had written to its
// events.jsonl are recovered: before the resumed run starts, the daemon
// stores (before run_resumed, in seq order) every whole line of the file
// above the last seq it holds. Those the run had not written yet are lost
// with the process, as its work is: the resumed run, whose seq goes on
// from the file's last whole line, does that work again and records it.
// An event the daemon had committed but the run had not written (the
// file is buffered between the run's waits) is one of those: it is
// deleted from the store, since the resumed run hands out its seq again.
// So a task's run events, from the store, are its events.jsonl, seq 1, 2,
// ... without a gap or a repeat, but for what a stopped run said.
package daemon
