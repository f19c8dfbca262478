package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/gtask/gtask/appmain"
	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/provider"
)

// echoProvider is a one-call app: Compute writes its params to
// {subtask}.out.
type echoProvider struct{ workDir string }

func (p echoProvider) Compute(_ context.Context, _, subtaskID string, params json.RawMessage) (string, error) {
	name := subtaskID + ".out"
	return name, os.WriteFile(filepath.Join(p.workDir, name), params, 0o644)
}

func (echoProvider) RunBenchmark(context.Context) (float64, error) { return 1, nil }

// ExampleInlineLauncher runs a provider inside this process: Start returns
// with the server listening, the host calls it as it would a process, and
// the instance ends by itself after its one call.
func ExampleInlineLauncher() {
	workDir, err := os.MkdirTemp("", "example-inline-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(workDir)

	l := host.InlineLauncher{Roles: appmain.Roles{
		Provider: func(workDir string, _ *slog.Logger) (provider.Handler, error) {
			return echoProvider{workDir: workDir}, nil
		},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inst, err := l.Start(ctx, host.RoleProvider, workDir, filepath.Join(workDir, "provider.log"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer inst.Kill() // a no-op once it has ended

	c, err := host.DialProvider(ctx, inst.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := c.Compute(ctx, "t1", "s1", json.RawMessage(`{"n": 3}`))
	c.Close()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("output:", out)
	<-inst.Done()
	fmt.Println("ended:", inst.Wait())
	// Output:
	// output: s1.out
	// ended: <nil>
}

// ExampleProcessLauncher starts the requestor of an app built with gtask:
// `./squares --work-dir work requestor 0`, found by its readiness line. An
// app of the reference convention, in any language, is configured as
//
//	host.ProcessLauncher{Bin: "python3", Args: []string{"/opt/app/main.py"}}
//
// and gets `requestor PORT` in its work dir, found by its health instead.
func ExampleProcessLauncher() {
	l := host.ProcessLauncher{Bin: "./squares", GtaskApp: true}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inst, err := l.Start(ctx, host.RoleRequestor, "work", "work/requestor.log")
	if err != nil {
		fmt.Println(err) // names ./squares and the log, and quotes the log's last line
		return
	}
	rc, err := host.DialRequestor(ctx, inst.Addr(), host.WithTLSDir("work"))
	if err != nil {
		inst.Kill()
		fmt.Println(err)
		return
	}
	// ... CreateTask, the loop, then:
	rc.Close()
	if err := inst.Stop(ctx); err != nil { // SIGTERM, then SIGKILL when ctx ends
		fmt.Println(err)
	}
}
