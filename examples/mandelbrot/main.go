// Command mandelbrot renders the Mandelbrot set as a gtask app: the image
// splits into horizontal strips, each rendered by a provider, spot-checked
// by the requestor and assembled into task_outputs/mandelbrot.png.
//
// See README.md for its params and how to run it.
package main

import "github.com/gtask/gtask/sdk"

func main() { sdk.Main(app{}) }
