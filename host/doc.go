// Package host drives Golem Task API apps: Run runs one whole task, with a
// Launcher that starts the app's requestor and providers, and the typed
// clients (RequestorClient for the long-running RequestorApp,
// ProviderClient for a one-shot ProviderApp) call them.
//
// # Running a task
//
// Run creates the task once, then keeps RunConfig.Providers slots busy:
// each slot asks NextSubtask for its node (a fresh subtask id every time),
// copies the resources into a fresh provider's task dir, calls Compute
// under a per-attempt deadline, checks the one output the provider names
// (a relative path that stays inside its task dir, a regular file, no
// symbolic link, not too big: anything else is a failed attempt, and no
// file is ever read from elsewhere) and, once the provider has exited,
// brings it into subtask_outputs/{subtask}/: the very file that was
// checked, linked when it is the host's own on the same file system (no
// copy), else copied. Verification is a stage of its own, with its
// own concurrency and time limit, so providers go on computing while
// results are judged: SUCCESS is done; FAILURE sends the part to another
// node; INCONCLUSIVE and AWAITING_DATA are verified again after a later
// verification (the app makes a replica pending for INCONCLUSIVE). A node
// whose attempt failed (it crashed, ran out of time, answered an error or a
// bad output, or its result was rejected) gets no more of the task; an
// attempt aborted because Verify itself kept failing is the checker's
// fault, not the node's, and bans nobody. A failed node is banned
// (node_banned), and its slot goes on as a new node unless it has done so
// already (a result may be judged after its slot has moved on). Failed
// attempts are bounded (RunConfig.MaxAttempts); too many, the task's
// Timeout, a task that cannot progress or the end of ctx abort it
// (AbortTask), and whatever happens every provider and the requestor are
// gone when Run returns.
//
// The end of a task is as fast as its slowest attempt, so once the app has
// nothing left to hand out, an idle slot backs up a slow subtask (one
// computing for twice the run's median attempt, and a second at least):
// it computes the same subtask on its own node (backup_started), the first
// copy whose output passes the checks is the one verified, and the other
// is stopped (subtask_superseded), with no failure counted and no node
// banned. RunConfig.Backups tunes this, or turns it off for an app whose
// Compute must not run twice.
//
// CreateTask answers with the environment the providers need (docker_cpu
// and its image, say). A Launcher that is an EnvLauncher is asked for the
// providers' launcher in that environment, once, when the task is created;
// one that cannot give it fails the task, naming it. The process and inline
// launchers run providers as they run the requestor, whatever the
// environment; the docker launcher (package host/docker) honours it.
//
// Many runs at once may share a pool of provider slots: RunConfig.Gate is
// called by each attempt, once its subtask is handed out and before its
// provider starts (and before its SubtaskTimeout starts), and waits for a
// slot; the slot is given back once the provider is gone. A SlotPool gives
// each run a Gate keyed by its task, and serves the waiting attempts
// round-robin between tasks, so that a task with many slots cannot starve
// another:
//
//	pool := host.NewSlotPool(runtime.NumCPU())
//	cfg.Gate = pool.Gate(cfg.TaskID) // for each run, keyed by its task
//
// A host that died mid-task (killed, the machine rebooted) goes on with it
// by a Run with RunConfig.Resume over the same WorkDir and TaskID: the app
// reopens the task from its work dir (CreateTask answers AlreadyExists),
// the parts it accepted are not computed again, and events.jsonl goes on,
// from task_resumed, with the Seq after its last whole line. A host that
// stops on purpose (a daemon's restart) ends Run's ctx with ErrStopped as
// its cause: the run stops as at any end of ctx, but does not abort the
// task (task_stopped), and a Run with Resume goes on with it.
//
// Every step is an Event, written as one JSON line to the run's
// events.jsonl and passed to RunConfig.OnEvent; each carries the run's
// Progress (parts done of all, computing, verifying, failed, retried), and
// the last one a Summary. RunConfig.Chaos sabotages attempts on purpose
// (killed, stalled, wrong or garbage output), reproducibly from a seed, to
// show that the task still ends with the same output.
//
//	res, err := host.Run(ctx, host.RunConfig{
//		Launcher: host.ProcessLauncher{Bin: "./mandelbrot", GtaskApp: true},
//		Params:   json.RawMessage(`{"width": 640, "height": 480}`),
//		OnEvent:  func(ev host.Event) { bar.Set(ev.Progress.Done, ev.Progress.Parts) },
//	})
//	if err != nil {
//		return err // the host's trouble, or ctx ended; the task was aborted
//	}
//	fmt.Println(res.Summary()) // finished in 2.1s: 15/15 parts, ...
//	// res.Outcome: Finished (results in res.OutputsDir), Failed or Aborted.
//
// # Calling an app
//
// The clients speak the wire contract (see proto/golem_task_api), so they
// drive any app that speaks it, whatever language it is written in.
//
// A dial returns only once the server's standard health service answers
// SERVING, so the first call never races the app's start-up; reconnects are
// fast, because the server is usually a process the host has just started.
// A launcher that reads the app's stdout learns the address from its
// readiness line with ReadyAddr instead of guessing it. Run itself skips
// the health check for a gtask app whose readiness line was read (it
// serves already), and lets such a provider exit by itself once it has
// answered rather than signal it.
//
// An app running inside the host (the InlineLauncher's instances, which
// are DirectInstances) needs no dial: NewRequestorClient(inst.Conn()) calls
// it in process, with the same request checks, answers and status codes as
// over gRPC but no socket, dial or health check, and Run does so whenever
// an instance is a DirectInstance. A no-op subtask then costs the host tens
// of microseconds instead of milliseconds.
//
// The loop Run runs, in short, with the clients alone:
//
//	rc, err := host.DialRequestor(ctx, "127.0.0.1:50005", host.WithTLSDir(workDir))
//	if err != nil {
//		return err // says what was dialled and the last health answer or error
//	}
//	defer rc.Close()
//
//	task, err := rc.CreateTask(ctx, "t1", 0, json.RawMessage(`{"frames": 10}`))
//	if err != nil {
//		return err // status.Code(err) is the app's code, e.g. InvalidArgument
//	}
//	_ = task.EnvID // "docker_cpu": where providers compute
//	for {
//		pending, err := rc.HasPendingSubtasks(ctx, "t1")
//		if err != nil {
//			return err
//		}
//		if !pending {
//			break
//		}
//		subtaskID := uuid.NewString() // fresh for every call
//		sub, err := rc.NextSubtask(ctx, "t1", subtaskID, nodeID)
//		if err != nil {
//			return err
//		}
//		if sub == nil {
//			continue // nothing for this node now; try another node
//		}
//		// Copy sub.Resources, start a provider (its readiness line gives
//		// the address: host.ReadyAddr), then:
//		pc, err := host.DialProvider(ctx, providerAddr, host.WithTLSDir(providerDir))
//		if err != nil {
//			return err
//		}
//		out, err := pc.Compute(ctx, "t1", subtaskID, sub.Params)
//		pc.Close()
//		if err != nil {
//			return err // e.g. codes.InvalidArgument: the app refused the params
//		}
//		// Copy out back into t1/subtask_outputs/{subtaskID}/, then:
//		verdict, reason, err := rc.Verify(ctx, "t1", subtaskID)
//		if err != nil {
//			return err
//		}
//		switch verdict {
//		case requestor.Success: // done with this part
//		case requestor.Failure: // the part is asked for again, elsewhere
//		case requestor.Inconclusive: // compute a replica on another node
//		case requestor.AwaitingData: // Verify again after another verification
//		}
//		_ = reason // for events and logs
//	}
//
// Every method returns the server's gRPC status through its error
// (status.Code(err)); a host treats any error as a failure of that call.
package host
