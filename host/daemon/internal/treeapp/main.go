// Command treeapp is a gtask app for the daemon's tests: its requestor
// submits child tasks to the daemon that runs it (GTASK_HOST, with its
// GTASK_FAMILY_TOKEN), and its parts take a while, or hang until killed.
//
// Params: {"depth": D, "hang": H, "quick_child": Q, "parts": N, "sleep_ms": MS}.
// A task of depth D > 0 creates one child of depth D-1 with the same hang,
// and, with quick_child, one child with no params (one part, done at
// once). Each of its N parts (default 1) sleeps MS milliseconds, or, with
// hang, waits until it is killed; part i's result is i*i, and the task's
// result.json is {"sum": the sum of the results}.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
	"github.com/gtask/gtask/sdk"
)

type params struct {
	Depth      int  `json:"depth"`
	Hang       bool `json:"hang"`
	QuickChild bool `json:"quick_child"`
	Parts      int  `json:"parts"`
	SleepMS    int  `json:"sleep_ms"`
}

type part struct {
	Hang    bool `json:"hang"`
	SleepMS int  `json:"sleep_ms"`
}

type app struct{}

func (app) Split(ctx context.Context, t *sdk.Task[params]) ([]sdk.Part[part], error) {
	p := t.Params
	if p.Depth > 0 {
		child, _ := json.Marshal(params{Depth: p.Depth - 1, Hang: p.Hang})
		if err := submit(ctx, string(child)); err != nil {
			return nil, err
		}
	}
	if p.QuickChild {
		if err := submit(ctx, ""); err != nil {
			return nil, err
		}
	}
	n := max(p.Parts, 1)
	parts := make([]sdk.Part[part], n)
	for i := range parts {
		parts[i].Params = part{Hang: p.Hang, SleepMS: p.SleepMS}
	}
	return parts, nil
}

// submit creates a child task of this one, running this very binary.
func submit(ctx context.Context, paramsJSON string) error {
	addr, token := os.Getenv("GTASK_HOST"), os.Getenv("GTASK_FAMILY_TOKEN")
	if addr == "" || token == "" {
		return fmt.Errorf("GTASK_HOST and GTASK_FAMILY_TOKEN are needed to submit a child")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	_, err = hostv1.NewHostServiceClient(conn).CreateTask(ctx, &hostv1.CreateTaskRequest{
		App: self, ParamsJson: paramsJSON, Providers: 1,
	})
	return err
}

func (app) Compute(ctx context.Context, s *sdk.Subtask[part]) (string, error) {
	if s.Params.Hang {
		<-ctx.Done()
		return "", ctx.Err()
	}
	select {
	case <-time.After(time.Duration(s.Params.SleepMS) * time.Millisecond):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	out, err := s.OutputPath("square.txt")
	if err != nil {
		return "", err
	}
	return out, os.WriteFile(out, []byte(strconv.Itoa(s.Part*s.Part)), 0o644)
}

func (app) Verify(ctx context.Context, r *sdk.Result[params, part]) (sdk.Verdict, error) {
	b, err := os.ReadFile(r.File)
	if err != nil {
		return sdk.Verdict{}, err
	}
	if strings.TrimSpace(string(b)) != strconv.Itoa(r.Part*r.Part) {
		return sdk.Reject("part %d: got %q", r.Part, b), nil
	}
	return sdk.Accept(), nil
}

func (app) Merge(ctx context.Context, t *sdk.Task[params], results []*sdk.Result[params, part]) error {
	sum := 0
	for _, r := range results {
		sum += r.Part * r.Part
	}
	b, _ := json.Marshal(map[string]int{"sum": sum})
	return os.WriteFile(filepath.Join(t.Dir.Outputs(), "result.json"), b, 0o644)
}

func main() { sdk.Main(app{}) }
