package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/galera-supervisor/galera-supervisor/optionfile"
	"github.com/galera-supervisor/galera-supervisor/schema"
	"github.com/galera-supervisor/galera-supervisor/supervisor"
	"github.com/galera-supervisor/galera-supervisor/supervisor/endpoint"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

func cmdConfig() *command {
	return &command{
		name:  "config",
		usage: "print [SOURCES] [--mysqld] GROUP... | check [SOURCES] [--as-user=USER]",
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

config check [SOURCES] [--as-user=USER]
    Checks the [sst] and [galera-supervisor] groups (and their +S forms
    with a group suffix) against the options galera-supervisor and its SST
    methods know, with the rules "run", its live guard and the SST apply
    (see "help sst" for the table of [sst] options). Prints every finding
    at once, one line each, naming file and line and labelled:
      /etc/mysql/conf.d/x.cnf:12: warning: [sst] unknown option 'compresor' (did you mean 'compressor'?)
      /etc/mysql/conf.d/x.cnf:13: error: [sst] transfer-chunk-size=16M: want 4k to 8M
      /etc/mysql/conf.d/x.cnf:14: warning: [sst] streamfmt: native methods send their own ...
    A bad value is an error; an unknown option, or one the configured
    wsrep_sst_method does not read, a warning saying what it means here.
    Durations take a unit (300s, 5m, 1h) or count seconds. Files the options
    name (certificates, keys, peer-secret-file) must be readable by USER,
    the unit's User= (default the server's user option, else mysql), also
    when the check runs as root. Then checks the peer options of
    [galera-supervisor] and of its health endpoint together, as "run"
    reads them.
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
	asUser := ""
	for _, a := range rest {
		v, ok := strings.CutPrefix(a, "--as-user=")
		if !ok || v == "" {
			return usageError(fmt.Sprintf("config check: unexpected argument %q (the --defaults-* options come first, then --as-user=USER)", a))
		}
		asUser = v
	}
	set, err := optionfile.Load(src)
	if err != nil {
		return &exitError{1, "config check: " + err.Error()}
	}
	errs, warns := 0, 0
	for _, w := range set.Warnings() {
		fmt.Fprintf(c.stdout, "%v (warning)\n", w)
		warns++
	}
	findings := schema.CheckSet(set, supervisor.SSTMethod(set))
	findings = append(findings, checkAsUser(c, set, asUser)...)
	if !hasError(findings, schema.Supervisor) {
		findings = append(findings, checkPeers(set)...)
	}
	for _, f := range findings {
		fmt.Fprintln(c.stdout, f)
		if f.Error {
			errs++
		} else {
			warns++
		}
	}
	if errs > 0 {
		return &exitError{1, fmt.Sprintf("config check: %d error(s), %d warning(s) in [sst] and [galera-supervisor]", errs, warns)}
	}
	return nil
}

func hasError(fs []schema.Finding, g schema.Group) bool {
	for _, f := range fs {
		if f.Error && optionfile.Key(f.Option.Group) == string(g) {
			return true
		}
	}
	return false
}

// checkAsUser checks that the files the options name are readable by the
// unit's User=: name, or the server's user option, or mysql.
func checkAsUser(c *cli, set *optionfile.Set, name string) []schema.Finding {
	if name == "" {
		name = "mysql"
		if o, ok := set.Lookup(optionfile.ServerGroups(""), "user"); ok && o.Value != "" {
			name = o.Value
		}
	}
	acct, err := schema.LookupAccount(name)
	if err != nil {
		fmt.Fprintf(c.stdout, "config check: user %s: %v: file readability not checked (warning)\n", name, err)
		return nil
	}
	return schema.CheckReadable(set, acct)
}

// checkPeers validates the peer coordination and endpoint options as run
// reads them (certificates, the secret, the peers list), naming the file and line of
// the option at fault. Malformed values were reported by schema.CheckSet.
func checkPeers(set *optionfile.Set) []schema.Finding {
	look := func(groups ...string) quorum.Lookup {
		return func(name string) (string, bool) {
			o, ok := set.Lookup(groups, name)
			if ok && !o.HasValue {
				return "1", true
			}
			return o.Value, ok
		}
	}
	gs, sst := look("galera-supervisor"), look("sst")
	_, perr := quorum.ConfigFrom(gs, look(optionfile.ServerGroups("")...), sst)
	_, eerr := endpoint.ConfigFrom(gs, sst)
	var out []schema.Finding
	for _, err := range []error{perr, eerr} {
		if err == nil {
			continue
		}
		f := schema.Finding{Error: true, Msg: err.Error(), Option: optionfile.Option{Group: "galera-supervisor"}}
		var oe *quorum.OptionError
		if errors.As(err, &oe) {
			if o, ok := set.Lookup([]string{"galera-supervisor"}, oe.Option); ok {
				f.Option = o
			}
			f.Msg = strings.TrimPrefix(err.Error(), "[galera-supervisor] ")
		}
		out = append(out, f)
	}
	return out
}
