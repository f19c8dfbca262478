package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/gtask/gtask/client"
	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
)

// Submit a task of the average example, wait for it and take its result.
// It needs a running `gtask serve` and a token in GTASK_TOKEN.
func Example() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.DefaultHost, os.Getenv("GTASK_TOKEN"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	task, err := c.Submit(ctx, client.SubmitRequest{
		App:    "./examples/average",
		Params: json.RawMessage(`{"column": "age"}`),
		Inputs: []string{"examples/average/testdata/org1.csv", "examples/average/testdata/org2.csv"},
	})
	if err != nil {
		log.Fatal(err)
	}
	// Wait rides out a restart of the daemon, and gives up on one that is
	// gone for 2 minutes.
	task, err = c.Wait(ctx, task.GetTaskId())
	if err != nil {
		log.Fatal(err)
	}
	if task.GetState() != hostv1.TaskState_TASK_STATE_FINISHED {
		log.Fatalf("task %s ended %s: %s", task.GetTaskId(), task.GetState(), task.GetReason())
	}
	files, err := c.Results(ctx, task.GetTaskId(), "gtask-out/"+task.GetTaskId())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(files) // [result.json], holding {"average": 53.25}
}

// A task's requestor submits a child task with the daemon's address and
// the family token of its environment; the child is its task's.
func ExampleFromEnv() {
	ctx := context.Background()
	c, err := client.FromEnv(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	child, err := c.Submit(ctx, client.SubmitRequest{App: "/opt/apps/render", Params: json.RawMessage(`{"frame": 7}`)})
	if err != nil {
		log.Fatal(err)
	}
	child, err = c.Wait(ctx, child.GetTaskId())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(child.GetState())
}
