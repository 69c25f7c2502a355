package main

import (
	"context"
	"fmt"
	"os"

	"github.com/galera-supervisor/galera-supervisor/supervisor"
)

func cmdRecover() *command {
	return &command{
		name:  "recover",
		usage: "[--defaults-file=F] [--defaults-extra-file=F] [--defaults-group-suffix=S] [--mariadbd=PATH] [-- mariadbd args]",
		short: "recover the node's position with mariadbd --wsrep-recover, like galera_recovery",
		long: `
Runs "mariadbd <defaults> [args] --wsrep-recover --disable-log-error
--user=<user>" (with the datadir's owner as user when run as root, as
galera_recovery does), and prints "--wsrep_start_position=<uuid:seqno[,gtid]>"
on stdout. It prints nothing when wsrep_on is off. mariadbd must not be
running on the datadir. First, as "run" does, it rolls back a snapshot swap
that a killed SST joiner left half done, and removes its staging directory
unless it is kept for the next native-copy SST to resume from (marked with
the cluster UUID, .sst-native-resume).

Exit codes: 0 printed (or wsrep off), 2 usage, 3 recovery failed (the log's
tail is on stderr), 78 option files.

Options:
` + flagUsage(recoverFlags(new(supervisor.Defaults), new(string))),
		run: runRecover,
	}
}

func recoverFlags(d *supervisor.Defaults, mariadbd *string) *flagSet {
	fs := newFlagSet("recover")
	defaultsFlags(fs, d)
	fs.StringVar(mariadbd, "mariadbd", supervisor.DefaultMariadbd, "the server binary")
	return fs
}

func runRecover(ctx context.Context, c *cli, args []string) error {
	var (
		d        supervisor.Defaults
		mariadbd string
	)
	extra, err := parseFlags(recoverFlags(&d, &mariadbd), args)
	if err != nil {
		return err
	}
	opts, err := supervisor.LoadOptionFiles(d, logger(c.stderr, "galera-supervisor: "))(ctx)
	if err != nil {
		return &supervisor.ExitError{Code: supervisor.ExitConfig, Err: fmt.Errorf("read option files: %w", err)}
	}
	supervisor.AddArgs(opts.Server, extra)
	if !opts.Bool("wsrep-on", false) {
		fmt.Fprintln(c.stderr, "wsrep_on is off: nothing to recover")
		return nil
	}
	if err := supervisor.CleanSST(opts, logger(c.stderr, "galera-supervisor: ")); err != nil {
		return &supervisor.ExitError{Code: supervisor.ExitRecovery, Err: err}
	}
	user := opts.Server["user"]
	if user == "" {
		user = "mysql"
	}
	pos, err := supervisor.Recover(ctx, supervisor.RecoverConfig{
		Mariadbd: mariadbd, Defaults: d, ExtraArgs: extra, User: user, Env: os.Environ(),
	})
	if err != nil {
		return &supervisor.ExitError{Code: supervisor.ExitRecovery, Err: err}
	}
	fmt.Fprintf(c.stdout, "--wsrep_start_position=%s\n", pos)
	return nil
}
