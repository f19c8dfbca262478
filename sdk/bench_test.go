package sdk_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
)

// benchApp is the cheapest app there is: n parts, every result accepted.
type benchApp struct{ n int }

type benchPart struct {
	I int `json:"i"`
}

func (a benchApp) Split(context.Context, *sdk.Task[struct{}]) ([]sdk.Part[benchPart], error) {
	parts := make([]sdk.Part[benchPart], a.n)
	for i := range parts {
		parts[i].Params.I = i
	}
	return parts, nil
}

func (benchApp) Compute(context.Context, *sdk.Subtask[benchPart]) (string, error) { return "", nil }

func (benchApp) Verify(context.Context, *sdk.Result[struct{}, benchPart]) (sdk.Verdict, error) {
	return sdk.Accept(), nil
}

func (benchApp) Merge(context.Context, *sdk.Task[struct{}], []*sdk.Result[struct{}, benchPart]) error {
	return nil
}

// benchTask is a task of n parts being worked through, kept across the
// calls testing makes of one sub-benchmark so that its parts are created
// once per size.
type benchTask struct {
	h       requestor.Handler
	wd      string
	n       int
	task    string
	tasks   int
	used    int // parts handed out in the current task
	results int // result files written ahead, for subtasks used..results-1
}

func (bt *benchTask) newTask(b *testing.B) {
	bt.tasks++
	bt.task, bt.used, bt.results = fmt.Sprintf("t%d", bt.tasks), 0, 0
	if _, err := bt.h.CreateTask(context.Background(), bt.task, 0, nil); err != nil {
		b.Fatal(err)
	}
}

// writeAhead writes the result files of the next k subtasks, as the host
// would have before calling Verify.
func (bt *benchTask) writeAhead(b *testing.B, k int) {
	for range k {
		dir := filepath.Join(bt.wd, bt.task, "subtask_outputs", fmt.Sprintf("s%d", bt.results))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "result"), []byte("ok"), 0o644); err != nil {
			b.Fatal(err)
		}
		bt.results++
	}
}

func newBenchTask(b *testing.B, owner *testing.B, n int) *benchTask {
	wd := owner.TempDir()
	bt := &benchTask{h: sdk.NewRequestor[struct{}, benchPart](benchApp{n: n}, wd, nil), wd: wd, n: n}
	owner.Cleanup(func() { bt.h.Shutdown(context.Background()) })
	bt.newTask(b)
	// Creating a million parts leaves a large heap behind; collect it now
	// rather than in the timed loop.
	runtime.GC()
	return bt
}

// prepare does, untimed, what the next subtask needs: a new task when the
// current one is down to its last part (whose Verify would run the merge),
// and its result file.
func (bt *benchTask) prepare(b *testing.B) {
	if bt.used == bt.n-1 {
		bt.newTask(b)
	}
	if bt.used == bt.results {
		bt.writeAhead(b, min(1000, bt.n-1-bt.results))
	}
}

// subtask is the timed part: NextSubtask, then Verify.
func (bt *benchTask) subtask(b *testing.B) {
	ctx := context.Background()
	sub := fmt.Sprintf("s%d", bt.used)
	st, err := bt.h.NextSubtask(ctx, bt.task, sub, "node")
	if err != nil || st == nil {
		b.Fatalf("NextSubtask: %v, %v", st, err)
	}
	v, reason, err := bt.h.Verify(ctx, bt.task, sub)
	if err != nil || v != requestor.Success {
		b.Fatalf("Verify: %v %q %v", v, reason, err)
	}
	bt.used++
}

// BenchmarkPerSubtask measures the requestor's cost of one subtask, in
// process, through NewRequestor's Handler: NextSubtask, then Verify of a
// result already in subtask_outputs (reading and hashing it, the app's
// Verify, recording the verdict), each with its durable commit, with the
// task holding 1,000, 100,000 and 1,000,000 parts. Creating the parts and
// writing the result files is not timed. Compare with BenchmarkCommitFloor,
// the two fsynced bbolt commits a subtask cannot do without, and see
// BenchmarkPerSubtaskRatio for the 1M/1k ratio measured without drift.
func BenchmarkPerSubtask(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		var bt *benchTask
		parent := b
		b.Run(fmt.Sprintf("parts=%d", n), func(b *testing.B) {
			if bt == nil {
				// Owned by the parent: testing calls this function again
				// with a larger b.N, and the task must outlive each call.
				bt = newBenchTask(b, parent, n)
			}
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				bt.prepare(b)
				b.StartTimer()
				bt.subtask(b)
			}
		})
	}
}

// BenchmarkPerSubtaskRatio alternates subtasks of a 1,000-part task and of
// a 1,000,000-part task in one loop, so that both see the same machine (on
// a shared machine the load and the disk's fsync latency drift over a
// benchmark's seconds), and reports each one's cost and their ratio
// (target: at most 1.3).
func BenchmarkPerSubtaskRatio(b *testing.B) {
	var small, large *benchTask
	parent := b
	b.Run("1M/1k", func(b *testing.B) {
		if small == nil {
			small, large = newBenchTask(b, parent, 1_000), newBenchTask(b, parent, 1_000_000)
		}
		var tSmall, tLarge time.Duration
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			small.prepare(b)
			large.prepare(b)
			b.StartTimer()
			// Alternate which goes first, lest one always follow the
			// other's fsync.
			first, second, t1, t2 := small, large, &tSmall, &tLarge
			if i%2 == 1 {
				first, second, t1, t2 = large, small, &tLarge, &tSmall
			}
			start := time.Now()
			first.subtask(b)
			mid := time.Now()
			second.subtask(b)
			*t1 += mid.Sub(start)
			*t2 += time.Since(mid)
		}
		b.ReportMetric(float64(tSmall.Nanoseconds())/float64(b.N), "ns/subtask@1k")
		b.ReportMetric(float64(tLarge.Nanoseconds())/float64(b.N), "ns/subtask@1M")
		b.ReportMetric(float64(tLarge)/float64(tSmall), "ratio")
	})
}

// BenchmarkCommitFloor is the floor of BenchmarkPerSubtask: two bbolt
// commits of one small write each, with the same fsync, in a small file.
func BenchmarkCommitFloor(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "floor.db"), 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	put := func(i int) {
		err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return bk.Put([]byte("k"), []byte(fmt.Sprint(i)))
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		put(i)
		put(i)
	}
}
