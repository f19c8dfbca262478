// Package host drives Golem Task API apps. This part of it holds the typed
// clients a host uses to call an app's two services: RequestorClient for the
// long-running RequestorApp and ProviderClient for a one-shot ProviderApp.
// They speak the wire contract (see proto/golem_task_api), so they drive any
// app that speaks it, whatever language it is written in.
//
// A dial returns only once the server's standard health service answers
// SERVING, so the first call never races the app's start-up; reconnects are
// fast, because the server is usually a process the host has just started.
// A launcher that reads the app's stdout learns the address from its
// readiness line with ReadyAddr instead of guessing it.
//
// The host's loop for one task, in short:
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
