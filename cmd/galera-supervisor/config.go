package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/galera-supervisor/galera-supervisor/optionfile"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

func cmdConfig() *command {
	return &command{
		name:  "config",
		usage: "print [SOURCES] [--mysqld] GROUP... | check [SOURCES]",
		short: "show and check the option files, as MariaDB reads them",
		long: `
config print [SOURCES] [--mysqld] [--no-defaults] GROUP...
    Prints the options of the given groups, one "--name=value" per line, in
    the order MariaDB reads them: byte for byte what my_print_defaults prints
    for the same arguments. --mysqld (or --mariadbd) adds the groups mariadbd
    reads: mysqld, server, mysqld-10.11, mariadb, mariadb-10.11, mariadbd,
    mariadbd-10.11, client-server, galera. With a group suffix S, each group
    G also reads G+S ([mysqld.1] for --defaults-group-suffix=.1).
    Exit status as my_print_defaults: 0 ok, 2 unreadable option files or an
    unknown option, 7 an unknown --name=value.

config check [SOURCES]
    Checks the [sst] group (and [sst+S] with a group suffix) against the
    options SST methods know. Prints one line per finding, naming file and
    line:
      /etc/mysql/conf.d/x.cnf:12: [sst] unknown option 'compresor' (did you mean 'compressor'?)
    Unknown options are warnings; bad values are errors. Then checks the
    peer options of [galera-supervisor] (peer-address, peers,
    peer-secret-file, peer-tls, bootstrap-wait, auto-bootstrap) as "run"
    reads them:
      /etc/mysql/conf.d/peers.cnf:3: [galera-supervisor] bootstrap-wait=5m: want seconds (a whole number)
    Exit status: 0 no errors (warnings allowed), 1 errors or unreadable
    option files, 2 bad command line.

SOURCES, which must come first and in this form only, as for every MariaDB
program:
    --no-defaults                 read no option files (alone)
    --defaults-file=F             read only F
    --defaults-extra-file=F       read F after the system files, before ~/.my.cnf
    --defaults-group-suffix=S     also read groups with suffix S
Without them the files are /etc/my.cnf, /etc/mysql/my.cnf,
$MARIADB_HOME/my.cnf (or $MYSQL_HOME/my.cnf) and ~/.my.cnf, with their
!include and !includedir files; $MYSQL_GROUP_SUFFIX is the default suffix.
`,
		run: runConfig,
	}
}

func runConfig(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usageError("config: print or check?")
	}
	switch args[0] {
	case "print":
		return configPrint(c, args[1:])
	case "check":
		return configCheck(c, args[1:])
	}
	return usageError(fmt.Sprintf("config: unknown subcommand %q (print or check)", args[0]))
}

// exitError ends the process with a chosen status.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
func (e *exitError) ExitCode() int { return e.code }

func configPrint(c *cli, args []string) error {
	err := optionfile.PrintDefaults(c.stdout, c.stderr, args)
	if errors.Is(err, optionfile.ErrNoGroups) {
		// my_print_defaults shows its help and succeeds.
		commandHelp(c.stdout, cmdConfig())
		return nil
	}
	if err != nil {
		return fmt.Errorf("config print: %w", err)
	}
	return nil
}

func configCheck(c *cli, args []string) error {
	src, rest, err := optionfile.ParseArgs(args)
	if err != nil {
		return usageError(err.Error())
	}
	if len(rest) > 0 {
		return usageError(fmt.Sprintf("config check: unexpected argument %q (the --defaults-* options come first)", rest[0]))
	}
	set, err := optionfile.Load(src)
	if err != nil {
		return &exitError{1, "config check: " + err.Error()}
	}
	for _, w := range set.Warnings() {
		fmt.Fprintf(c.stdout, "%v (warning)\n", w)
	}
	errs := 0
	for _, f := range optionfile.CheckSST(set) {
		fmt.Fprintln(c.stdout, f)
		if f.Error {
			errs++
		}
	}
	if msg := checkPeers(set); msg != "" {
		fmt.Fprintln(c.stdout, msg)
		errs++
	}
	if errs > 0 {
		return &exitError{1, fmt.Sprintf("config check: %d error(s) in [sst] and [galera-supervisor]", errs)}
	}
	return nil
}

// checkPeers validates the peer coordination options as run reads them,
// naming the file and line of the bad one.
func checkPeers(set *optionfile.Set) string {
	look := func(groups ...string) quorum.Lookup {
		return func(name string) (string, bool) {
			o, ok := set.Lookup(groups, name)
			if ok && !o.HasValue {
				return "1", true
			}
			return o.Value, ok
		}
	}
	_, err := quorum.ConfigFrom(look("galera-supervisor"), look(optionfile.ServerGroups("")...), look("sst"))
	if err == nil {
		return ""
	}
	var oe *quorum.OptionError
	if errors.As(err, &oe) {
		if o, ok := set.Lookup([]string{"galera-supervisor"}, oe.Option); ok {
			return o.Pos() + ": " + err.Error()
		}
	}
	return err.Error()
}
