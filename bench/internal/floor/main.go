// Command floor is the benchmarks' floor: the least a Go binary can do to
// serve one ProviderApp call the way a gtask provider does (bind, print the
// readiness line, serve one Compute, stop gracefully, exit 0), with none of
// gtask's machinery: no flags, no health, no reflection, no TLS look-up, no
// validation, no logging. With the single argument -write-out, Compute also
// writes the tiny file the no-op app of bench/runthroughput writes.
package main

import (
	"context"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"

	pb "github.com/gtask/gtask/gen/golem_task_api"
)

type server struct {
	pb.UnimplementedProviderAppServer
	done     chan struct{}
	writeOut bool
}

func (s *server) Compute(context.Context, *pb.ComputeRequest) (*pb.ComputeReply, error) {
	defer close(s.done)
	// The same output as the no-op app's provider, in the current
	// directory (one per driving worker).
	if s.writeOut {
		if err := os.WriteFile("out", []byte("ok\n"), 0o644); err != nil {
			return nil, err
		}
	}
	return &pb.ComputeReply{OutputFilepath: "out"}, nil
}

func main() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	g := grpc.NewServer()
	s := &server{done: make(chan struct{}), writeOut: len(os.Args) == 2 && os.Args[1] == "-write-out"}
	pb.RegisterProviderAppServer(g, s)
	fmt.Printf("gtask: serving provider on %s\n", lis.Addr())
	go func() {
		<-s.done
		g.GracefulStop()
	}()
	if err := g.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
