package sdk

import (
	"log/slog"

	"github.com/gtask/gtask/appmain"
	"github.com/gtask/gtask/provider"
	"github.com/gtask/gtask/requestor"
)

// Main is the whole main function of an app: it serves the role named on
// the command line (`requestor PORT` or `provider PORT`, see appmain) with
// the Handlers NewRequestor and NewProvider make of app, and exits. It never
// returns.
//
//	func main() { sdk.Main(myApp{}, sdk.WithRedundancy(2)) }
func Main[P, S any](app App[P, S], opts ...Option) {
	appmain.Main(appmain.Roles{
		Requestor: func(workDir string, log *slog.Logger) (requestor.Handler, error) {
			return NewRequestor(app, workDir, log, opts...), nil
		},
		Provider: func(workDir string, log *slog.Logger) (provider.Handler, error) {
			return NewProvider(app, workDir, log, opts...), nil
		},
	})
}
