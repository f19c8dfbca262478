// Package appmain is the process contract of a Golem Task API app: one
// executable serves both roles, as the reference's container entrypoint
// does,
//
//	APP [--work-dir DIR] [--listen HOST] requestor|provider PORT
//
// and Main is the whole main function of such an executable. An app hands it
// one factory per role; each gets the work dir and a logger and returns the
// role's Handler:
//
//	func main() {
//		appmain.Main(appmain.Roles{
//			Requestor: func(workDir string, log *slog.Logger) (requestor.Handler, error) {
//				return newRequestor(workDir, log)
//			},
//			Provider: func(workDir string, log *slog.Logger) (provider.Handler, error) {
//				return renderer{workDir: workDir, log: log}, nil
//			},
//		})
//	}
//
// (The SDK builds these factories from an App; this package is the plumbing
// under it.)
//
// What the process does, in order:
//
//   - Parses the command line with the standard flag package. An unknown
//     role, a role the app has no factory for, a missing or non-numeric PORT
//     or extra arguments is a usage error: the usage goes to stderr and the
//     process exits 2. PORT 0 picks a free port. -h prints the usage and
//     exits 0.
//   - Resolves the work dir. --work-dir must name an existing directory
//     (else exit 1, naming it). Without it the work dir is /golem/work, where
//     the contract mounts it in a container, or the current directory when
//     that does not exist, so that the same binary runs in a container and by
//     hand. For the provider role it is the task work dir, holding
//     subtask_inputs/.
//   - Chooses where to listen. --listen names the host or address. Without
//     it the app listens on 127.0.0.1, except when the work dir is
//     /golem/work: inside a container the host reaches the app from outside
//     the container's network namespace, where loopback is unreachable, so
//     it listens on 0.0.0.0 as the reference does. An app run by hand on a
//     workstation therefore is not open to the network unless asked.
//   - Loads mutual TLS from the work dir (task_api_server_key.pem,
//     task_api_server_cert.pem, task_api_client_cert.pem): all three serve
//     TLS, none serves plaintext, and some but not all refuses to start,
//     naming the missing files.
//   - Logs as slog text on stderr, and passes that logger to the factories.
//   - Once the listener is bound, prints exactly one line on stdout, the
//     readiness line of package readyline ("gtask: serving provider on
//     127.0.0.1:43121"), so that a host that launched it learns the address
//     without polling. Nothing else is ever written to stdout.
//   - Serves until a normal end, then exits 0: SIGTERM or SIGINT (a graceful
//     stop; a second signal kills), a Shutdown RPC, or, for a provider, its
//     one Compute or RunBenchmark answered. Any other failure exits 1 after
//     logging it. A provider that is not process 1 (not in a container)
//     catches no signal: SIGTERM or SIGINT end it at once; a one-shot
//     provider has nothing to save, and catching signals would cost it two
//     threads and 0.5 to 1 ms of CPU, a measurable share of its life.
//
// Run is the same without the process: it takes the arguments, a context and
// the two streams, and returns the error instead of exiting, for tests and
// for programs that embed an app.
package appmain
