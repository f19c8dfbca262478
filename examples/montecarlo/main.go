// Command montecarlo estimates π by seeded Monte Carlo sampling as a gtask
// app. A result cannot be checked without redoing its work, so the app runs
// with sdk.WithRedundancy(2): every part is computed on two nodes and
// accepted when their results agree.
//
// See README.md for its params and how to run it.
package main

import "github.com/gtask/gtask/sdk"

func main() { sdk.Main(app{}, options()...) }

// options are the SDK options the app runs with, shared by main and the
// tests so that both run the same app.
func options() []sdk.Option {
	return []sdk.Option{sdk.WithRedundancy(2)}
}
