package provider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/provider"
)

// squarer is a whole provider app: it "computes" a subtask by naming the
// file its result would be in.
type squarer struct{}

func (squarer) Compute(_ context.Context, _, subtaskID string, params json.RawMessage) (string, error) {
	var p struct{ N int }
	if err := json.Unmarshal(params, &p); err != nil {
		return "", fmt.Errorf("%w: %v", provider.ErrInvalidParams, err)
	}
	return fmt.Sprintf("%s/square-of-%d.txt", subtaskID, p.N), nil
}

func (squarer) RunBenchmark(context.Context) (float64, error) { return 0, provider.ErrNoBenchmark }

// A provider serves one request, then Serve returns nil by itself.
func ExampleServer() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := provider.NewServer(squarer{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), lis) }()

	// The host's side.
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	reply, err := pb.NewProviderAppClient(conn).Compute(context.Background(),
		&pb.ComputeRequest{TaskId: "t1", SubtaskId: "s1", SubtaskParamsJson: `{"N": 7}`})
	if err != nil {
		panic(err)
	}
	fmt.Println(reply.GetOutputFilepath())
	fmt.Println("Serve returned:", <-served)
	// Output:
	// s1/square-of-7.txt
	// Serve returned: <nil>
}
