package requestor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	taskapipb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/taskapi"
)

// single is an app whose every task is one subtask.
type single struct {
	mu    sync.Mutex
	given map[string]bool // task id -> its subtask was handed out
}

func (a *single) CreateTask(_ context.Context, taskID string, _ int, _ json.RawMessage) (requestor.Task, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.given[taskID]; ok {
		return requestor.Task{}, fmt.Errorf("task %q: %w", taskID, requestor.ErrTaskExists)
	}
	a.given[taskID] = false
	return requestor.Task{EnvID: taskapi.DockerCPUEnvID()}, nil
}

func (a *single) NextSubtask(_ context.Context, taskID, _, _ string) (*requestor.Subtask, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	given, ok := a.given[taskID]
	if !ok {
		return nil, fmt.Errorf("task %q: %w", taskID, requestor.ErrUnknownTask)
	}
	if given {
		return nil, nil // nothing for this node now
	}
	a.given[taskID] = true
	return &requestor.Subtask{Params: json.RawMessage(`{"part":0}`)}, nil
}

func (a *single) Verify(context.Context, string, string) (requestor.Verdict, string, error) {
	return requestor.Success, "looks right", nil
}

func (a *single) DiscardSubtasks(context.Context, string, []string) ([]string, error) {
	return nil, nil
}

func (a *single) RunBenchmark(context.Context) (float64, error) { return 1, nil }

func (a *single) HasPendingSubtasks(_ context.Context, taskID string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	given, ok := a.given[taskID]
	if !ok {
		return false, fmt.Errorf("task %q: %w", taskID, requestor.ErrUnknownTask)
	}
	return !given, nil
}

func (a *single) AbortTask(context.Context, string) error            { return nil }
func (a *single) AbortSubtask(context.Context, string, string) error { return nil }
func (a *single) Shutdown(context.Context) error                     { return nil }

func Example() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := requestor.NewServer(&single{given: map[string]bool{}})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), lis) }()

	// What a host does, through the generated client.
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	c := taskapipb.NewRequestorAppClient(conn)
	ctx := context.Background()

	task, err := c.CreateTask(ctx, &taskapipb.CreateTaskRequest{TaskId: "t1"}, grpc.WaitForReady(true))
	fmt.Println("env:", task.GetEnvId(), err)
	for {
		p, err := c.HasPendingSubtasks(ctx, &taskapipb.HasPendingSubtasksRequest{TaskId: "t1"})
		if err != nil || !p.GetHasPendingSubtasks() {
			break
		}
		next, _ := c.NextSubtask(ctx, &taskapipb.NextSubtaskRequest{TaskId: "t1", SubtaskId: "s1", OpaqueNodeId: "node-a"})
		fmt.Println("params:", next.GetSubtask().GetSubtaskParamsJson())
		// ... a provider computes s1 and the host copies its result back ...
		v, _ := c.Verify(ctx, &taskapipb.VerifyRequest{TaskId: "t1", SubtaskId: "s1"})
		fmt.Println("verdict:", v.GetResult(), v.GetReason())
	}
	_, err = c.CreateTask(ctx, &taskapipb.CreateTaskRequest{TaskId: "t1"})
	fmt.Println(err)
	_, err = c.CreateTask(ctx, &taskapipb.CreateTaskRequest{TaskId: "../t2"})
	fmt.Println(err)

	_, err = c.Shutdown(ctx, &taskapipb.ShutdownRequest{})
	fmt.Println("shutdown:", err, <-served)
	// Output:
	// env: docker_cpu <nil>
	// params: {"part":0}
	// verdict: SUCCESS looks right
	// rpc error: code = AlreadyExists desc = task "t1": task already exists
	// rpc error: code = InvalidArgument desc = task_id: holds a path separator '/' at byte 2: ids are used as directory names
	// shutdown: <nil> <nil>
}
