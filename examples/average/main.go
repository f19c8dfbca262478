// Command average is the federated "average" algorithm of vantage6 as a
// gtask app: every CSV file in task_inputs is one organisation's data, a
// provider computes the partial sum and count of one column of one
// partition, and the requestor merges the partials into the average.
//
// See README.md for its params and how to run it.
package main

import "github.com/gtask/gtask/sdk"

func main() { sdk.Main(app{}) }
