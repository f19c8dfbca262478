package appmain_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/gtask/gtask/appmain"
	"github.com/gtask/gtask/provider"
	"github.com/gtask/gtask/requestor"
)

// childEnv, when set, makes the test binary the test app instead of running
// the tests: the tests re-execute their own binary as the app's process, so
// no other binary is built. Its value is the app's behaviour: "app" for the
// normal app, "failing-factory" for one whose factories fail.
const childEnv = "GTASK_APPMAIN_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		goleak.VerifyTestMain(m)
	case "failing-factory":
		fail := errors.New("the test app cannot start: no GPU")
		appmain.Main(appmain.Roles{
			Requestor: func(string, *slog.Logger) (requestor.Handler, error) { return nil, fail },
			Provider:  func(string, *slog.Logger) (provider.Handler, error) { return nil, fail },
		})
	default:
		appmain.Main(appmain.Roles{
			Requestor: func(workDir string, log *slog.Logger) (requestor.Handler, error) {
				log.Info("test app", "work_dir", workDir)
				return testRequestor{workDir: workDir}, nil
			},
			Provider: func(workDir string, log *slog.Logger) (provider.Handler, error) {
				log.Info("test app", "work_dir", workDir)
				return testProvider{workDir: workDir}, nil
			},
		})
	}
}

// testParams are the test provider's subtask params: they say what Compute
// does.
type testParams struct {
	// Mode "write" writes result.txt holding the work dir and answers it;
	// "block" waits until the request is cancelled.
	Mode string `json:"mode"`
}

type testProvider struct{ workDir string }

func (p testProvider) Compute(ctx context.Context, _, _ string, raw json.RawMessage) (string, error) {
	var params testParams
	if err := json.Unmarshal(raw, &params); err != nil {
		return "", fmt.Errorf("%w: %v", provider.ErrInvalidParams, err)
	}
	switch params.Mode {
	case "write":
		// The work dir the app was given, for the tests to compare with.
		return "result.txt", os.WriteFile(filepath.Join(p.workDir, "result.txt"), []byte(p.workDir), 0o644)
	case "block":
		<-ctx.Done()
		return "", ctx.Err()
	}
	return "", fmt.Errorf("%w: unknown mode %q", provider.ErrInvalidParams, params.Mode)
}

func (testProvider) RunBenchmark(context.Context) (float64, error) { return 1, nil }

// testRequestor answers only what the tests call; the rest is unreachable.
type testRequestor struct{ workDir string }

var errNotInTest = errors.New("not used by the tests")

func (testRequestor) CreateTask(context.Context, string, int, json.RawMessage) (requestor.Task, error) {
	return requestor.Task{}, errNotInTest
}

func (testRequestor) NextSubtask(context.Context, string, string, string) (*requestor.Subtask, error) {
	return nil, errNotInTest
}

func (testRequestor) Verify(context.Context, string, string) (requestor.Verdict, string, error) {
	return 0, "", errNotInTest
}

func (testRequestor) DiscardSubtasks(context.Context, string, []string) ([]string, error) {
	return nil, errNotInTest
}

func (testRequestor) RunBenchmark(context.Context) (float64, error) { return 7, nil }

func (testRequestor) HasPendingSubtasks(context.Context, string) (bool, error) { return true, nil }

func (testRequestor) AbortTask(context.Context, string) error { return errNotInTest }

func (testRequestor) AbortSubtask(context.Context, string, string) error { return errNotInTest }

func (testRequestor) Shutdown(context.Context) error { return nil }
