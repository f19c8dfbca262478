// Command providercycle measures the full one-shot provider cycle of a gtask
// app (spawn, readiness line, one Compute with an empty handler, exit)
// against a floor measured in the same run: a minimal static Go binary that
// serves one gRPC call the same way (see ../internal/floor). It reports the ratio of
// gtask's cycle to the floor's at each parallelism; the target is at most
// 1.3x.
//
//	go run ./bench/providercycle                 # 300 cycles per side, parallel 1 and 4
//	go run ./bench/providercycle -n 1000 -p 1,2,4
//
// Both binaries are built static (CGO_ENABLED=0, -trimpath) with the same
// flags, and driven by the same client code: read the readiness line, dial
// it, call Compute, wait for the process to exit. The two sides run in
// alternating rounds so that noise from a shared machine falls on both.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gtask/gtask/bench/internal/spawn"
)

func main() {
	n := flag.Int("n", 300, "cycles per side and parallelism")
	par := flag.String("p", "1,4", "comma-separated parallelisms")
	rounds := flag.Int("rounds", 6, "alternating rounds the cycles are spread over")
	flag.Parse()
	if err := run(*n, *par, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "providercycle:", err)
		os.Exit(1)
	}
}

func run(n int, par string, rounds int) error {
	var levels []int
	for _, f := range strings.Split(par, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p < 1 {
			return fmt.Errorf("-p: %q is not a positive number", f)
		}
		levels = append(levels, p)
	}
	tmp, err := os.MkdirTemp("", "providercycle")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bins := map[string]string{}
	for name, pkg := range map[string]string{"floor": "./bench/internal/floor", "gtaskapp": "./bench/providercycle/gtaskapp"} {
		out := filepath.Join(tmp, name)
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building %s: %w", name, err)
		}
		st, err := os.Stat(out)
		if err != nil {
			return err
		}
		fmt.Printf("%-9s %5.1f MiB\n", name, float64(st.Size())/(1<<20))
		bins[name] = out
	}
	work := filepath.Join(tmp, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		return err
	}
	// Warm the page cache and the toolchain's effects before measuring.
	for _, b := range bins {
		if _, err := cycles(b, work, 20, 2); err != nil {
			return err
		}
	}
	fmt.Printf("\n%-8s %12s %12s %12s %12s %8s\n", "parallel", "floor/s", "gtask/s", "floor p50", "gtask p50", "ratio")
	for _, p := range levels {
		var floorT, gtaskT time.Duration
		var floorLat, gtaskLat []time.Duration
		per := max(n/rounds, p)
		for range rounds {
			lat, d, err := timed(bins["floor"], work, per, p)
			if err != nil {
				return err
			}
			floorT += d
			floorLat = append(floorLat, lat...)
			lat, d, err = timed(bins["gtaskapp"], work, per, p)
			if err != nil {
				return err
			}
			gtaskT += d
			gtaskLat = append(gtaskLat, lat...)
		}
		total := float64(per * rounds)
		fmt.Printf("%-8d %12.1f %12.1f %12s %12s %7.3fx\n", p,
			total/floorT.Seconds(), total/gtaskT.Seconds(),
			median(floorLat).Round(10*time.Microsecond), median(gtaskLat).Round(10*time.Microsecond),
			gtaskT.Seconds()/floorT.Seconds())
	}
	fmt.Println("\nratio = gtask's wall time for the same number of cycles / the floor's (target <= 1.3x)")
	return nil
}

func timed(bin, work string, n, p int) ([]time.Duration, time.Duration, error) {
	start := time.Now()
	lat, err := cycles(bin, work, n, p)
	return lat, time.Since(start), err
}

// cycles runs n cycles of bin with p at a time and returns each one's time.
func cycles(bin, work string, n, p int) ([]time.Duration, error) {
	return spawn.Parallel(n, p, func(int) error { return cycle(bin, work) })
}

// cycle is one provider's life as a host sees it; the app's log goes to a
// file of its own, as a host's per-run log does.
func cycle(bin, work string) error {
	args := []string{bin, "--work-dir", work, "provider", "0"}
	if strings.HasSuffix(bin, "floor") {
		args = []string{bin}
	}
	logFile, err := os.CreateTemp(work, "run-*.log")
	if err != nil {
		return err
	}
	defer os.Remove(logFile.Name())
	defer logFile.Close()
	return spawn.Cycle(args, work, logFile)
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
