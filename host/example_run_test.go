package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gtask/gtask/host"
)

// ExampleRun runs a whole task of a small app that squares numbers, with
// chaos corrupting the first result of every part: the task still ends
// with the right output. A real host launches the app's binary instead:
// host.ProcessLauncher{Bin: "./squares", GtaskApp: true}.
func ExampleRun() {
	workDir, err := os.MkdirTemp("", "example-run-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(workDir)

	res, err := host.Run(context.Background(), host.RunConfig{
		// The app's two roles, as sdk.Main serves them, in this process.
		Launcher:  host.InlineLauncher{Roles: sqRoles(&sqApp{})},
		WorkDir:   workDir,
		Params:    json.RawMessage(`{"parts": 4}`),
		Providers: 2,
		Chaos:     &host.Chaos{Wrong: 1, Seed: 7},
		OnEvent: func(ev host.Event) {
			if ev.Kind == host.EventChaosInjected {
				fmt.Printf("part %d: %s\n", *ev.Part, ev.Chaos)
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := os.ReadFile(filepath.Join(res.OutputsDir, "squares.txt"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Outcome, res.Outputs)
	fmt.Printf("%q\n", out)
	fmt.Printf("injected %d, recovered %d, rejected %d\n", res.Counts.InjectedTotal(), res.Counts.Recovered, res.Counts.Rejected)
	// Unordered output:
	// part 0: wrong
	// part 1: wrong
	// part 2: wrong
	// part 3: wrong
	// finished [squares.txt]
	// "0\n1\n4\n9\n"
	// injected 4, recovered 4, rejected 4
}
