package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
)

func TestSumColumn(t *testing.T) {
	tests := []struct {
		name    string
		csv     string
		column  string
		want    Partial
		wantErr []string // substrings of the error; nil for no error
	}{
		{name: "seed partition", csv: "name,age\nA,25\nB,62\nC,78\nD,88\n", column: "age", want: Partial{Sum: 253, Count: 4}},
		{name: "fractions", csv: "age,w\n1.5,0\n2.25,0\n", column: "age", want: Partial{Sum: 3.75, Count: 2}},
		{name: "other column", csv: "name,age,weight\nA,25,61.5\nB,62,80.5\n", column: "weight", want: Partial{Sum: 142, Count: 2}},
		{name: "spaces around values and names", csv: "name, age \nA, 25 \n", column: "age", want: Partial{Sum: 25, Count: 1}},
		{name: "header only", csv: "name,age\n", column: "age", want: Partial{}},
		{name: "no newline at end", csv: "age\n3\n4", column: "age", want: Partial{Sum: 7, Count: 2}},
		{name: "quoted value", csv: "name,age\n\"Doe, J\",\"40\"\n", column: "age", want: Partial{Sum: 40, Count: 1}},
		{name: "missing column", csv: "name,age,weight\nA,25,61\n", column: "height",
			wantErr: []string{"org1.csv", `no column "height"`, `"name", "age", "weight"`}},
		{name: "not a number", csv: "name,age\nA,25\nB,sixty\n", column: "age",
			wantErr: []string{"org1.csv:3:", `column "age"`, `"sixty" is not a number`}},
		{name: "empty value", csv: "name,age\nA,\n", column: "age",
			wantErr: []string{"org1.csv:2:", `"" is not a number`}},
		{name: "NaN", csv: "age\nNaN\n", column: "age", wantErr: []string{"org1.csv:2:", `"NaN" is not a number`}},
		{name: "infinity", csv: "age\n1\n+Inf\n", column: "age", wantErr: []string{"org1.csv:3:", `"+Inf" is not a number`}},
		{name: "line of a multi-line quoted field", csv: "note,age\n\"two\nlines\",5\nx,y\n", column: "age",
			wantErr: []string{"org1.csv:4:", `"y"`}},
		{name: "short row", csv: "name,age\nA,25\nB\n", column: "age", wantErr: []string{"org1.csv", "line 3", "wrong number of fields"}},
		{name: "empty file", csv: "", column: "age", wantErr: []string{"org1.csv", "empty file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sumColumn(strings.NewReader(tt.csv), "org1.csv", tt.column)
			if tt.wantErr != nil {
				require.Error(t, err)
				require.ErrorIs(t, err, sdk.ErrInvalidParams)
				for _, s := range tt.wantErr {
					assert.Contains(t, err.Error(), s)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestAverage(t *testing.T) {
	got, err := average([]Partial{{Sum: 253, Count: 4}, {Sum: 173, Count: 4}})
	require.NoError(t, err)
	assert.Equal(t, 53.25, got)

	_, err = average([]Partial{{}, {}})
	require.ErrorIs(t, err, errNoRows)
}

// newTask makes a task dir whose task_inputs holds files (name → content).
func newTask(t *testing.T, params Params, files map[string]string) *sdk.Task[Params] {
	t.Helper()
	dir := sdk.RequestorDir{Root: t.TempDir()}
	require.NoError(t, dir.Create())
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir.Inputs(), name), []byte(content), 0o644))
	}
	return &sdk.Task[Params]{ID: "t1", Params: params, Dir: dir, Log: slog.New(slog.DiscardHandler)}
}

func seedFiles(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, name := range []string{"org1.csv", "org2.csv"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(t, err)
		files[name] = string(b)
	}
	return files
}

func TestSplit(t *testing.T) {
	files := seedFiles(t)
	files["README.txt"] = "not a partition"
	task := newTask(t, Params{Column: "age"}, files)

	parts, err := app{}.Split(context.Background(), task)
	require.NoError(t, err)
	require.Len(t, parts, 2)
	for i, name := range []string{"org1.csv", "org2.csv"} {
		assert.Equal(t, PartParams{File: name, Column: "age"}, parts[i].Params)
		assert.Equal(t, []string{name}, parts[i].Resources)
		b, err := os.ReadFile(filepath.Join(task.Dir.SubtaskInputs(), name))
		require.NoError(t, err)
		assert.Equal(t, files[name], string(b), "the resource is the partition, unchanged")
	}
}

func TestSplitRefuses(t *testing.T) {
	seed := seedFiles(t)
	tests := []struct {
		name     string
		params   Params
		files    map[string]string
		maxParts int
		want     []string
	}{
		{name: "no CSV", params: Params{Column: "age"}, files: map[string]string{"data.txt": "age\n1\n"},
			want: []string{"no CSV file in task_inputs"}},
		{name: "missing column", params: Params{Column: "agee"}, files: seed,
			want: []string{"org1.csv", `no column "agee"`, `"name", "age", "weight"`}},
		{name: "missing in the second partition only", params: Params{Column: "age"},
			files: map[string]string{"a.csv": "age\n1\n", "b.csv": "name,years\nx,2\n"},
			want:  []string{"b.csv", `no column "age"`, `"name", "years"`}},
		{name: "bad value in the second partition", params: Params{Column: "age"},
			files: map[string]string{"a.csv": "age\n1\n", "b.csv": "age\n2\n3\nold\n"},
			want:  []string{"b.csv:4:", `"old" is not a number`}},
		{name: "no rows at all", params: Params{Column: "age"},
			files: map[string]string{"a.csv": "age\n", "b.csv": "age\n"},
			want:  []string{`column "age"`, "no rows"}},
		{name: "more partitions than subtasks", params: Params{Column: "age"}, files: seed, maxParts: 1,
			want: []string{"2 partitions", "at most 1 subtasks"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := newTask(t, tt.params, tt.files)
			task.MaxParts = tt.maxParts
			_, err := app{}.Split(context.Background(), task)
			require.ErrorIs(t, err, sdk.ErrInvalidParams)
			for _, s := range tt.want {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}

func TestSplitPartialModeAllowsEmptyPartitions(t *testing.T) {
	task := newTask(t, Params{Column: "age", Partial: true}, map[string]string{"a.csv": "age\n"})
	parts, err := app{}.Split(context.Background(), task)
	require.NoError(t, err)
	assert.Len(t, parts, 1)
}

func TestParamsValidate(t *testing.T) {
	require.NoError(t, Params{Column: "age"}.Validate())
	require.ErrorContains(t, Params{}.Validate(), "column")
}

func TestPartParamsValidate(t *testing.T) {
	require.NoError(t, PartParams{File: "org1.csv", Column: "age"}.Validate())
	for _, file := range []string{"", "../secret.csv", "/etc/passwd", "sub/org1.csv"} {
		require.ErrorContains(t, PartParams{File: file, Column: "age"}.Validate(), "plain file name", file)
	}
}

// computeAndVerify runs Compute for part i of task, then Verify on the
// result file after tamper (if not nil) has rewritten it.
func computeAndVerify(t *testing.T, task *sdk.Task[Params], part sdk.Part[PartParams], i int, tamper func(path string)) sdk.Verdict {
	t.Helper()
	prov := sdk.ProviderDir{Root: t.TempDir()}
	require.NoError(t, os.MkdirAll(prov.SubtaskInputs(), 0o755))
	for _, res := range part.Resources {
		require.NoError(t, copyFile(prov.Input(res), filepath.Join(task.Dir.SubtaskInputs(), res)))
	}
	sub := &sdk.Subtask[PartParams]{TaskID: task.ID, ID: "s1", Part: i, Params: part.Params, Dir: prov, Log: task.Log}
	out, err := app{}.Compute(context.Background(), sub)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(prov.Root, "s1", partialFile), out)
	if tamper != nil {
		tamper(out)
	}
	v, err := app{}.Verify(context.Background(), &sdk.Result[Params, PartParams]{
		Task: task, SubtaskID: "s1", NodeID: "n1", Part: i, Params: part.Params, File: out,
	})
	require.NoError(t, err)
	return v
}

func TestComputeVerify(t *testing.T) {
	task := newTask(t, Params{Column: "age"}, seedFiles(t))
	parts, err := app{}.Split(context.Background(), task)
	require.NoError(t, err)

	write := func(s string) func(string) {
		return func(path string) { require.NoError(t, os.WriteFile(path, []byte(s), 0o644)) }
	}
	tests := []struct {
		name       string
		tamper     func(string)
		wantResult requestor.Verdict
		wantReason []string
	}{
		{name: "honest", wantResult: requestor.Success},
		{name: "wrong sum", tamper: write(`{"sum": 250, "count": 4}`), wantResult: requestor.Failure,
			wantReason: []string{"org1.csv", "expected sum 253 and count 4, got sum 250 and count 4"}},
		{name: "wrong count", tamper: write(`{"sum": 253, "count": 5}`), wantResult: requestor.Failure,
			wantReason: []string{"expected sum 253 and count 4, got sum 253 and count 5"}},
		{name: "not JSON", tamper: write(`253/4`), wantResult: requestor.Failure, wantReason: []string{"not {\"sum\": S, \"count\": N}"}},
		{name: "unknown field", tamper: write(`{"sum": 253, "count": 4, "mean": 63.25}`), wantResult: requestor.Failure,
			wantReason: []string{"unknown field"}},
		{name: "two values", tamper: write(`{"sum": 253, "count": 4}{}`), wantResult: requestor.Failure,
			wantReason: []string{"data after"}},
		{name: "negative count", tamper: write(`{"sum": 0, "count": -1}`), wantResult: requestor.Failure,
			wantReason: []string{"negative count"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := computeAndVerify(t, task, parts[0], 0, tt.tamper)
			assert.Equal(t, tt.wantResult, v.Result, v.Reason)
			for _, s := range tt.wantReason {
				assert.Contains(t, v.Reason, s)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name    string
		partial bool
		want    string
	}{
		{name: "average", want: `{"average":53.25}`},
		{name: "partials in partition order", partial: true, want: `[{"sum":253,"count":4},{"sum":173,"count":4}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := newTask(t, Params{Column: "age", Partial: tt.partial}, nil)
			var results []*sdk.Result[Params, PartParams]
			for i, content := range []string{`{"sum":253,"count":4}`, `{"sum":173,"count":4}`} {
				path := filepath.Join(t.TempDir(), partialFile)
				require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
				results = append(results, &sdk.Result[Params, PartParams]{Task: task, Part: i, File: path})
			}
			require.NoError(t, app{}.Merge(context.Background(), task, results))
			b, err := os.ReadFile(filepath.Join(task.Dir.Outputs(), resultFile))
			require.NoError(t, err)
			assert.JSONEq(t, tt.want, string(b))
		})
	}
}
