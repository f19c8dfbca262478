package host

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOpenEventsToResume: the file is cut after its last whole line, and
// that line's event is returned, whatever the file's size.
func TestOpenEventsToResume(t *testing.T) {
	line := func(seq int64, pad int) string {
		b, err := json.Marshal(Event{Seq: seq, Kind: EventSubtaskAssigned, Reason: strings.Repeat("x", pad), Progress: Progress{Done: int(seq)}})
		require.NoError(t, err)
		return string(b) + "\n"
	}
	long := line(3, 200<<10) // longer than the first window read
	tests := []struct {
		name     string
		content  string
		keep     string // what the file holds after
		lastSeq  int64  // 0: no event
		wantErr  string
		noCreate bool
	}{
		{name: "missing", noCreate: true},
		{name: "empty"},
		{name: "whole lines", content: line(1, 0) + line(2, 0), keep: line(1, 0) + line(2, 0), lastSeq: 2},
		{name: "partial last line", content: line(1, 0) + line(2, 0) + `{"seq":3,"ki`, keep: line(1, 0) + line(2, 0), lastSeq: 2},
		{name: "only a partial line", content: `{"seq":1,"ki`},
		{name: "long last line", content: line(1, 0) + line(2, 0) + long + `{"seq":4`, keep: line(1, 0) + line(2, 0) + long, lastSeq: 3},
		{name: "long only line", content: long, keep: long, lastSeq: 3},
		{name: "long partial line", content: line(1, 0) + strings.Repeat("y", 300<<10), keep: line(1, 0), lastSeq: 1},
		{name: "not an event", content: line(1, 0) + "garbage\n", wantErr: "last line is no event"},
		{name: "no seq", content: "{}\n", wantErr: "no seq"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			if !tt.noCreate {
				require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o644))
			}
			f, last, err := openEventsToResume(path)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.lastSeq == 0 {
				assert.Nil(t, last)
			} else {
				require.NotNil(t, last)
				assert.Equal(t, tt.lastSeq, last.Seq)
				assert.Equal(t, int(tt.lastSeq), last.Progress.Done)
			}
			// What is written next follows the last whole line.
			_, err = f.WriteString("next\n")
			require.NoError(t, err)
			require.NoError(t, f.Close())
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, tt.keep+"next\n", string(b))
		})
	}
}
