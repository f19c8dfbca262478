package cli

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
)

// TestClientCommandsBadInput checks that the client commands refuse what
// is wrong before they call the daemon: exit 2, saying what.
func TestClientCommandsBadInput(t *testing.T) {
	t.Setenv("GTASK_TOKEN", "")
	t.Setenv("GTASK_HOST", "")
	dir := t.TempDir()
	host := []string{"--host", "127.0.0.1:1", "--token", "tok"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no token", []string{"ls"}, "gtask token create"},
		{"submit no APP", append([]string{"submit"}, host...), "submit takes APP"},
		{"submit bad params", append([]string{"submit", "app", "--params", "{"}, host...), "not valid JSON"},
		{"submit missing input", append([]string{"submit", "app", "--input", filepath.Join(dir, "nope")}, host...), "no such file"},
		{"submit bad runtime", append([]string{"submit", "app", "--runtime", "vm"}, host...), `--runtime "vm"`},
		{"submit negative", append([]string{"submit", "app", "--providers", "-1"}, host...), "--providers is -1"},
		{"ls bad state", append([]string{"ls", "--state", "sleeping"}, host...), `--state "sleeping"`},
		{"watch negative cursor", append([]string{"watch", "x", "--cursor", "-1"}, host...), "--cursor is -1"},
		{"logs too many", append([]string{"logs", "a", "b", "c"}, host...), "logs takes ID"},
		{"bad host", []string{"get", "x", "--host", "nohost", "--token", "t"}, "HOST:PORT"},
		{"token no user", []string{"token", "create"}, "--user is required"},
		{"serve negative slots", []string{"serve", "--slots", "-2"}, "--slots is -2"},
		{"serve zero upload ttl", []string{"serve", "--upload-ttl", "0"}, "--upload-ttl is 0"},
		{"serve any", []string{"serve", "--listen", ":7878"}, "every interface"},
		{"serve http any", []string{"serve", "--listen", "127.0.0.1:0", "--http", "10.1.2.3:80"}, "--http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, t.Context(), tt.args...)
			assert.Equal(t, ExitBadInput, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tt.want)
		})
	}
}

func TestParseState(t *testing.T) {
	for _, s := range []string{"running", "RUNNING", "TASK_STATE_RUNNING", " Running "} {
		st, err := parseState(s)
		assert.NoError(t, err)
		assert.Equal(t, "running", stateName(st))
	}
	_, err := parseState("unspecified")
	assert.Error(t, err)
}

// TestEventText: a watched event on a line says what it is about, a
// backup's copy included, and leaves out what does not apply.
func TestEventText(t *testing.T) {
	ev := &hostv1.Event{
		Cursor: 12, TaskId: "t1", Kind: "subtask_superseded", SubtaskId: "s1", Part: 3, Attempt: 1, Backup: 1,
		Node: "node-2", Reason: "the copy on node-0 was computed first",
		State: hostv1.TaskState_TASK_STATE_RUNNING, Progress: &hostv1.Progress{Parts: 4, Done: 3},
	}
	got := eventText(ev)
	assert.Contains(t, got, `12 --:--:--.--- t1 subtask_superseded subtask=s1 part=3 attempt=1 backup=1 node=node-2 reason="the copy on node-0 was computed first" [running `)
	plain := eventText(&hostv1.Event{Cursor: 1, TaskId: "t1", Kind: "task_queued", Part: -1})
	assert.Equal(t, "1 --:--:--.--- t1 task_queued", plain)
}
