package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	pb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/internal/rpcserver"
	"github.com/gtask/gtask/requestor"
)

// exampleApp is a tiny RequestorApp: one task, one subtask, always right.
type exampleApp struct {
	pb.UnimplementedRequestorAppServer
	stop func() // asks the server to stop, from inside a handler
}

func (exampleApp) CreateTask(context.Context, *pb.CreateTaskRequest) (*pb.CreateTaskReply, error) {
	return &pb.CreateTaskReply{EnvId: "docker_cpu", PrerequisitesJson: `{"image":"example/app","tag":"1.0"}`}, nil
}

func (exampleApp) NextSubtask(context.Context, *pb.NextSubtaskRequest) (*pb.NextSubtaskReply, error) {
	return &pb.NextSubtaskReply{SubtaskOneof: &pb.NextSubtaskReply_Subtask{Subtask: &pb.SubtaskReply{
		SubtaskParamsJson: `{"part":0}`,
		Resources:         []string{"part0.txt"},
	}}}, nil
}

func (exampleApp) Verify(_ context.Context, r *pb.VerifyRequest) (*pb.VerifyReply, error) {
	if r.GetSubtaskId() != "s1" {
		return nil, requestor.ErrUnknownSubtask
	}
	return &pb.VerifyReply{Result: pb.VerifyReply_SUCCESS, Reason: "checksum matches"}, nil
}

func (a exampleApp) Shutdown(context.Context, *pb.ShutdownRequest) (*pb.ShutdownReply, error) {
	a.stop()
	return &pb.ShutdownReply{}, nil
}

func Example() {
	// Serve the app on a free port, as `app requestor PORT` would.
	app := &exampleApp{}
	srv := rpcserver.New(rpcserver.Config{}, func(s grpc.ServiceRegistrar) { pb.RegisterRequestorAppServer(s, app) })
	app.stop = srv.RequestStop
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), lis) }()

	// The host's side.
	ctx := context.Background()
	rc, err := host.DialRequestor(ctx, lis.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rc.Close()

	task, err := rc.CreateTask(ctx, "t1", 0, json.RawMessage(`{"parts":1}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("env:", task.EnvID, string(task.Prerequisites))

	sub, err := rc.NextSubtask(ctx, "t1", "s1", "node-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("subtask:", string(sub.Params), sub.Resources)

	verdict, reason, err := rc.Verify(ctx, "t1", "s1")
	fmt.Println("verdict:", verdict, reason, err)

	_, _, err = rc.Verify(ctx, "t1", "s9")
	fmt.Println("unknown subtask:", status.Code(err))

	// Shutdown stops the server; Serve then returns.
	if err := rc.Shutdown(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("served:", <-served)
	// Output:
	// env: docker_cpu {"image":"example/app","tag":"1.0"}
	// subtask: {"part":0} [part0.txt]
	// verdict: SUCCESS checksum matches <nil>
	// unknown subtask: NotFound
	// served: <nil>
}
