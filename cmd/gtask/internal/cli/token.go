package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.etcd.io/bbolt"

	hostclient "github.com/gtask/gtask/client"
	"github.com/gtask/gtask/host/daemon"
	"github.com/gtask/gtask/internal/appbuild"
)

// openLimit bounds opening a data dir for `gtask token create`: a daemon
// running on it holds its database's lock.
const openLimit = 3 * time.Second

type tokenFlags struct {
	hostFlags
	user    string
	admin   bool
	dataDir string
}

func newTokenCommand(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage the gtask daemon's tokens",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTokenCreateCommand(stdout, stderr))
	return cmd
}

func newTokenCreateCommand(stdout, stderr io.Writer) *cobra.Command {
	var f tokenFlags
	cmd := &cobra.Command{
		Use:   "create --user NAME [--admin] [flags]",
		Short: "Make a token for a user of the gtask daemon",
		Long: `Make a token for user NAME (with --admin, an admin token: it may do
everything, this included) and print it on stdout. It is shown this once:
the daemon keeps only its hash.

Without --host or --token, the token is made in the data dir (--data-dir),
which no daemon may be running on (it holds the data dir's lock): stop it,
or ask it instead with --host and an admin --token (or GTASK_TOKEN).

Exit status:
  0    the token was made
  2    bad input: flags, no data dir, a daemon running on it, a token refused
  3    the data dir or the daemon failed`,
		Example: `  gtask token create --user alice
  gtask token create --user ops --admin --host 127.0.0.1:7878 --token "$ADMIN_TOKEN"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			remote := cmd.Flags().Changed("host") || cmd.Flags().Changed("token")
			return createToken(cmd.Context(), f, remote, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.user, "user", "", "the user the token acts for (required)")
	fl.BoolVar(&f.admin, "admin", false, "an admin token")
	fl.StringVar(&f.dataDir, "data-dir", "", "the daemon's data dir, when no daemon runs (default: as 'gtask serve')")
	addHostFlags(cmd, &f.hostFlags)
	return cmd
}

func createToken(ctx context.Context, f tokenFlags, remote bool, stdout, stderr io.Writer) error {
	if strings.TrimSpace(f.user) == "" {
		return badInput("--user is required: the user the token acts for")
	}
	kind := "a token"
	if f.admin {
		kind = "an admin token"
	}
	var tok string
	if remote {
		if f.dataDir != "" {
			return badInput("--data-dir is for making the token without a daemon; with --host or --token the daemon makes it")
		}
		err := withClient(ctx, f.hostFlags, func(c *hostclient.Client) error {
			var err error
			tok, err = c.CreateToken(ctx, f.user, f.admin)
			return err
		})
		if err != nil {
			return err
		}
	} else {
		var err error
		if tok, err = createTokenLocally(ctx, f, stderr); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "gtask: %s for %s, shown this once only (the daemon keeps only its hash):\n", kind, f.user)
	fmt.Fprintln(stdout, tok)
	return nil
}

// createTokenLocally makes the token in the data dir, with no daemon
// running on it.
func createTokenLocally(ctx context.Context, f tokenFlags, stderr io.Writer) (string, error) {
	dir, err := dataDirFlag(f.dataDir)
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", badInput("no data dir at %s: start 'gtask serve' once (it makes the data dir and prints the admin token), or name it with --data-dir", dir)
	}
	octx, cancel := context.WithTimeout(ctx, openLimit)
	defer cancel()
	d, err := daemon.Open(octx, daemon.Config{DataDir: dir, CacheDir: appbuild.DefaultCacheDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		if ctx.Err() != nil {
			return "", &exitError{ExitInterrupted, errors.New("interrupted")}
		}
		if dataDirInUse(err) {
			return "", badInput("the data dir %s is in use, by a running gtask serve: stop the daemon, or use --host with an admin --token (%v)", dir, err)
		}
		return "", hostError("opening the data dir %s: %w", dir, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopLimit)
		defer cancel()
		if err := d.Close(cctx); err != nil {
			fmt.Fprintf(stderr, "gtask: closing the data dir %s: %v\n", dir, err)
		}
	}()
	if admin := d.AdminToken(); admin != "" {
		// The data dir was new to the daemon: it made its admin token.
		fmt.Fprintf(stderr, "gtask: the data dir %s had no tokens: made its admin token, shown this once only; keep it safe:\n"+
			"    export GTASK_TOKEN=%s\n", dir, admin)
	}
	tok, err := d.CreateToken(f.user, f.admin)
	if err != nil {
		return "", hostError("making the token in %s: %w", dir, err)
	}
	return tok, nil
}

// dataDirInUse reports whether err, the daemon's Open's, says another
// process holds the data dir: its database's lock did not come within
// openLimit.
func dataDirInUse(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, bbolt.ErrTimeout) {
		return true
	}
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "timeout") || strings.Contains(s, "lock") || strings.Contains(s, "in use")
}
