package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gtask/gtask/sdk"
)

type Params struct {
	N int `json:"n"`
}

func (p Params) Validate() error {
	if p.N < 1 {
		return fmt.Errorf("n is %d; it must be at least 1", p.N)
	}
	return nil
}

type Range struct {
	From int `json:"from"`
	To   int `json:"to"` // inclusive
}

// squares sums the squares of 1..N, in parts of at most 100 numbers.
type squares struct{}

func (squares) Split(ctx context.Context, t *sdk.Task[Params]) ([]sdk.Part[Range], error) {
	var parts []sdk.Part[Range]
	for from := 1; from <= t.Params.N; from += 100 {
		parts = append(parts, sdk.Part[Range]{Params: Range{from, min(from+99, t.Params.N)}})
	}
	return parts, nil
}

func (squares) Compute(ctx context.Context, s *sdk.Subtask[Range]) (string, error) {
	sum := 0
	for i := s.Params.From; i <= s.Params.To; i++ {
		sum += i * i
	}
	out, err := s.OutputPath("sum.txt")
	if err != nil {
		return "", err
	}
	return out, os.WriteFile(out, []byte(strconv.Itoa(sum)), 0o644)
}

func (squares) Verify(ctx context.Context, r *sdk.Result[Params, Range]) (sdk.Verdict, error) {
	b, err := os.ReadFile(r.File)
	if err != nil {
		return sdk.Verdict{}, err
	}
	if _, err := strconv.Atoi(string(b)); err != nil {
		return sdk.Reject("not a number: %q", b), nil
	}
	return sdk.Accept(), nil
}

func (squares) Merge(ctx context.Context, t *sdk.Task[Params], results []*sdk.Result[Params, Range]) error {
	total := 0
	for _, r := range results {
		b, err := os.ReadFile(r.File)
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(string(b))
		total += n
	}
	return os.WriteFile(filepath.Join(t.Dir.Outputs(), "total.txt"), []byte(strconv.Itoa(total)), 0o644)
}

// Example runs the squares app in process, playing the host: CreateTask,
// then NextSubtask, Compute in a fresh provider dir, copy the result back,
// Verify, while HasPendingSubtasks. A real app's main is just
//
//	func main() { sdk.Main(squares{}) }
func Example() {
	ctx := context.Background()
	work, _ := os.MkdirTemp("", "gtask-example")
	defer os.RemoveAll(work)

	req := sdk.NewRequestor[Params, Range](squares{}, filepath.Join(work, "requestor"), nil)
	defer req.Shutdown(ctx)
	os.MkdirAll(filepath.Join(work, "requestor"), 0o755)
	if _, err := req.CreateTask(ctx, "t1", 0, []byte(`{"n": 250}`)); err != nil {
		fmt.Println(err)
		return
	}
	for i := 0; ; i++ {
		pending, _ := req.HasPendingSubtasks(ctx, "t1")
		if !pending {
			break
		}
		sub := fmt.Sprintf("s%d", i)
		st, _ := req.NextSubtask(ctx, "t1", sub, "node-1")
		provDir := filepath.Join(work, "provider", sub)
		prov := sdk.NewProvider[Params, Range](squares{}, provDir, nil)
		out, err := prov.Compute(ctx, "t1", sub, st.Params)
		if err != nil {
			fmt.Println(err)
			return
		}
		dst := filepath.Join(work, "requestor", "t1", "subtask_outputs", sub)
		os.MkdirAll(dst, 0o755)
		copyFile(filepath.Join(provDir, out), filepath.Join(dst, filepath.Base(out)))
		verdict, reason, _ := req.Verify(ctx, "t1", sub)
		fmt.Println(string(st.Params), verdict, reason)
	}
	total, _ := os.ReadFile(filepath.Join(work, "requestor", "t1", "task_outputs", "total.txt"))
	fmt.Println("total:", string(total))
	status, _ := sdk.ReadStatus(filepath.Join(work, "requestor", "t1"))
	fmt.Println("status:", status.State)
	// Output:
	// {"part":0,"params":{"from":1,"to":100}} SUCCESS accepted
	// {"part":1,"params":{"from":101,"to":200}} SUCCESS accepted
	// {"part":2,"params":{"from":201,"to":250}} SUCCESS accepted; task finished
	// total: 5239625
	// status: finished
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	return errors.Join(err, dst.Close())
}
