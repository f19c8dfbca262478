package sdk

// Option configures the SDK's handling of an app (see Main). The zero set
// of options is a working configuration. WithMaxAttempts and
// WithRedundancy are stored with each task when it is created: a restarted
// requestor keeps applying the values a task was created with.
type Option func(*options)

type options struct {
	maxAttempts   int
	redundancy    int
	envID         string
	prerequisites any
	minMemoryMiB  float64
}

// DefaultMaxAttempts is how many subtasks one part may be given before the
// task fails, when WithMaxAttempts is not used.
const DefaultMaxAttempts = 3

func defaultOptions() options {
	return options{maxAttempts: DefaultMaxAttempts, redundancy: 1}
}

// WithMaxAttempts sets K, how many failed attempts one part may have
// before the task fails: each rejected or aborted subtask of the part, and
// each extra replica asked for because its results disagree (or the app
// said Inconclusive), is one; the K-th fails the task. Default:
// DefaultMaxAttempts (3). With redundancy k, each part is thus computed at
// most k-1+K times. Values below 1 mean 1.
func WithMaxAttempts(n int) Option { return func(o *options) { o.maxAttempts = max(n, 1) } }

// WithRedundancy makes the SDK compute each part on k distinct nodes (by
// opaque_node_id) and accept a result only when a strict majority of the
// results agree by content hash (sha256): Verify answers AWAITING_DATA until
// k results are in, SUCCESS for those that agree (FAILURE for the others),
// and INCONCLUSIVE (one more replica) when no majority emerges. The app's
// own Verify still runs first on each result, as a cheap sanity check.
// Default: 1 (no redundancy). Values below 1 mean 1.
func WithRedundancy(k int) Option { return func(o *options) { o.redundancy = max(k, 1) } }

// WithEnvironment sets what CreateTask answers: the providers' environment
// id (e.g. taskapi.DockerCPUEnvID()) and its prerequisites, encoded as JSON
// (for docker: struct{Image, Tag string} with json tags "image", "tag").
// Default: taskapi.DockerCPUEnvID() with no prerequisites.
func WithEnvironment(envID string, prerequisites any) Option {
	return func(o *options) { o.envID, o.prerequisites = envID, prerequisites }
}

// WithMinMemory sets the least memory, in MiB, a provider needs. Default: 0
// (no requirement).
func WithMinMemory(mib float64) Option { return func(o *options) { o.minMemoryMiB = mib } }
