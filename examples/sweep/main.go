// Command sweep is a gtask app whose parts are whole tasks: it runs another
// app once per setting of a parameter sweep, as child tasks of the
// `gtask serve` daemon that runs it, and merges their results.
//
// It shows child tasks: the daemon gives a task's requestor GTASK_HOST and
// GTASK_FAMILY_TOKEN, with which it may create tasks under itself, read
// them and kill them, and nothing else. Killing a sweep kills its children.
// See README.md.
package main

import "github.com/gtask/gtask/sdk"

func main() { sdk.Main(app{}) }
