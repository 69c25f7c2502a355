// Command galera-supervisor runs a MariaDB Galera node under systemd: it
// recovers the node's position, starts mariadbd, performs SSTs natively and
// tells systemd the truth about the node's state.
//
// Installed as wsrep_sst_native-copy or wsrep_sst_native-backup (a link to
// this binary), argv[0] selects the SST method and the arguments follow the
// server's SST script contract.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", progName(os.Args), err)
	}
	os.Exit(exitCode(err))
}

// cli carries what every subcommand needs; nothing in it is global.
type cli struct {
	stdout, stderr io.Writer
	prog           string
}

type command struct {
	name  string
	usage string // one line, after the command name
	short string
	long  string
	run   func(ctx context.Context, c *cli, args []string) error
}

// commands is the dispatch table; each lives in its own file.
func commands() []*command {
	return []*command{
		cmdRun(),
		cmdSST(),
		cmdRecover(),
		cmdBootstrap(),
		cmdStatus(),
		cmdMaintenance(),
		cmdConfig(),
		cmdVersion(),
		cmdCompletion(),
	}
}

const sstPrefix = "wsrep_sst_"

func progName(argv []string) string {
	if len(argv) == 0 {
		return "galera-supervisor"
	}
	return filepath.Base(argv[0])
}

func run(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	c := &cli{stdout: stdout, stderr: stderr, prog: progName(argv)}
	// Started by mariadbd as wsrep_sst_<method>: the rest is the SST contract.
	if method, ok := strings.CutPrefix(c.prog, sstPrefix); ok {
		return runSSTMethod(ctx, c, method, argv[1:])
	}
	args := argv[1:]
	if len(args) == 0 {
		usage(c.stderr)
		return usageError("no command given")
	}
	switch args[0] {
	case "-h", "--help", "help":
		if len(args) > 1 {
			if cmd := lookup(args[1]); cmd != nil {
				commandHelp(c.stdout, cmd)
				return nil
			}
		}
		usage(c.stdout)
		return nil
	case "-v", "--version":
		args = []string{"version"}
	}
	cmd := lookup(args[0])
	if cmd == nil {
		usage(c.stderr)
		return usageError(fmt.Sprintf("unknown command %q", args[0]))
	}
	for _, a := range args[1:] {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" {
			commandHelp(c.stdout, cmd)
			return nil
		}
	}
	return cmd.run(ctx, c, args[1:])
}

func lookup(name string) *command {
	for _, cmd := range commands() {
		if cmd.name == name {
			return cmd
		}
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprint(w, `galera-supervisor runs one MariaDB Galera node under systemd.

Usage:
  galera-supervisor <command> [options]

Commands:
`)
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", cmd.name, cmd.short)
	}
	fmt.Fprint(w, `
As wsrep_sst_native-copy or wsrep_sst_native-backup (a link to this binary),
it is an SST method that mariadbd runs itself; see "galera-supervisor help sst".

Run "galera-supervisor help <command>" for a command's options.
Exit codes are listed in "galera-supervisor help run".
`)
}

func commandHelp(w io.Writer, cmd *command) {
	fmt.Fprintf(w, "Usage: galera-supervisor %s %s\n\n%s\n", cmd.name, cmd.usage, cmd.short)
	if cmd.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.long))
	}
}
