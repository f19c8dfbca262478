// Command noop is the runthroughput benchmark's subject: a gtask app whose
// requestor is a raw requestor.Handler counting parts in memory and whose
// provider writes a tiny file, so that a run measures the host's own cost
// (see ../../internal/noopapp).
package main

import (
	"github.com/gtask/gtask/appmain"
	"github.com/gtask/gtask/bench/internal/noopapp"
)

func main() { appmain.Main(noopapp.Roles()) }
