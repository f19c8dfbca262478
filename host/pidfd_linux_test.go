package host

import (
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Both ways of waitExited, the pidfd's and the blocking waitid's, wait for
// the exit and leave the process unreaped: its pid still names it (a
// zombie), and cmd.Wait still gets its exit status.
func TestWaitExitedWaysDoNotReap(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	ways := map[string]func(pid int) error{
		"pidfd": func(pid int) error {
			if !pidfdWaitExited(pid) {
				return errors.ErrUnsupported
			}
			return nil
		},
		"waitid": waitidExited,
	}
	for name, wait := range ways {
		t.Run(name, func(t *testing.T) {
			// The shell exits once its stdin is closed, not before.
			cmd := exec.Command(sh, "-c", "read x; exit 3")
			stdin, err := cmd.StdinPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

			waited := make(chan error, 1)
			go func() { waited <- wait(cmd.Process.Pid) }()
			select {
			case err := <-waited:
				t.Fatalf("returned while the process runs: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
			require.NoError(t, stdin.Close())
			select {
			case err := <-waited:
				if errors.Is(err, errors.ErrUnsupported) {
					t.Skip("no pidfd here")
				}
				require.NoError(t, err)
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-waited
				t.Fatal("did not return once the process exited")
			}

			assert.NoError(t, syscall.Kill(cmd.Process.Pid, 0), "the pid no longer names the process: reaped")
			var exit *exec.ExitError
			require.ErrorAs(t, cmd.Wait(), &exit)
			assert.Equal(t, 3, exit.ExitCode())
		})
	}
}

// A process that has exited already is seen at once, by the first waitid.
func TestPidfdWaitExitedAfterTheExit(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	cmd := exec.Command(sh, "-c", "exit 0")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Wait() })
	require.NoError(t, waitidExited(cmd.Process.Pid))
	if !pidfdWaitExited(cmd.Process.Pid) {
		t.Skip("no pidfd here")
	}
}
