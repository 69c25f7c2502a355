package main

import (
	"fmt"
	"io"
	"strings"
)

// manPages returns the section 8 pages, by file name: galera-supervisor(8)
// and one galera-supervisor-<command>(8) per command, from the same texts
// as --help, so the two cannot drift apart (kept in packaging/; a test
// keeps the committed pages current).
func manPages() map[string]string {
	pages := map[string]string{}
	var b strings.Builder
	manPage(&b)
	pages["galera-supervisor.8"] = b.String()
	for _, cmd := range commands() {
		b.Reset()
		commandManPage(&b, cmd)
		pages["galera-supervisor-"+cmd.name+".8"] = b.String()
	}
	return pages
}

const manHeader = `.\" Generated from the help texts of galera-supervisor; do not edit.
.\" Regenerate: go test ./cmd/galera-supervisor -run TestManPage -update
`

// manPage writes galera-supervisor(8): what the program is, its commands
// in brief, exit status and files.
func manPage(w io.Writer) {
	fmt.Fprint(w, manHeader+`.TH GALERA-SUPERVISOR 8 "" "galera-supervisor" "System Administration"
.SH NAME
galera-supervisor \- run a MariaDB Galera node under systemd, with native SST methods
.SH SYNOPSIS
.B galera-supervisor
.I command
.RI [ options ]
.br
.B wsrep_sst_native-copy
.RI [ "SST script arguments" ]
.br
.B wsrep_sst_native-backup
.RI [ "SST script arguments" ]
.SH DESCRIPTION
.B galera-supervisor
is the ExecStart of a Type=notify unit. It recovers the node's position,
starts mariadbd as its child and tells systemd the truth: READY only once
the node is Synced, STATUS lines with SST progress, start-timeout extensions
only while a transfer moves, and watchdog pings only while the node is
healthy.
.PP
Installed as
.B wsrep_sst_native-copy
or
.B wsrep_sst_native-backup
(a link to this binary), it is an SST method that mariadbd runs itself:
argv[0] selects the mode and the arguments follow the server's SST script
contract.
.SH COMMANDS
Each command has its own page, with its options and exit codes.
`)
	for _, cmd := range commands() {
		fmt.Fprintf(w, ".TP\n.BR galera\\-supervisor\\-%s (8)\n%s\n", cmd.name, roffText(cmd.short))
	}
	fmt.Fprint(w, `.SH EXIT STATUS
Each command's exit codes are listed on its page; those of
.B run
are what a unit's Restart= and RestartPreventExitStatus= act on. As an SST
method the exit codes are errnos, as mariadbd expects (see
.BR galera\-supervisor\-sst (8)).
.SH FILES
.TP
.I /usr/lib/systemd/system/galera-supervisor.service
the unit of a node that replaces mariadb.service;
.I galera-supervisor@.service
runs several nodes on one host, instance
.I N
reading the option groups with the suffix
.RI . N
([mysqld.\fIN\fP], [galera.\fIN\fP], [sst.\fIN\fP]).
.TP
.I /usr/share/galera-supervisor/mariadb.service.d/galera-supervisor.conf
a drop-in that puts the supervisor in charge of the distribution's mariadb.service.
.TP
.I /usr/lib/systemd/catalog/galera-supervisor.catalog
journal catalog entries for the SST messages (journalctl \-x).
.TP
.I <datadir>/grastate.dat
the node's saved position.
.TP
.I <datadir>/.sst-native
the staging directory of a native SST joiner; kept after a broken
native\-copy SST for the next to resume from.
.TP
.I <datadir>/.sst-native-resume
the cluster UUID whose next SST resumes from the kept staging.
.SH SEE ALSO
`)
	for _, cmd := range commands() {
		fmt.Fprintf(w, ".BR galera\\-supervisor\\-%s (8),\n", cmd.name)
	}
	fmt.Fprint(w, `.BR mariadbd (8),
.BR systemd.service (5),
.BR systemctl (1),
.BR journalctl (1)
`)
}

// commandManPage writes galera-supervisor-<command>(8).
func commandManPage(w io.Writer, cmd *command) {
	name := "galera-supervisor-" + cmd.name
	fmt.Fprintf(w, manHeader+".TH %s 8 \"\" \"galera-supervisor\" \"System Administration\"\n", strings.ToUpper(name))
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", roffText(name), roffText(cmd.short))
	fmt.Fprintf(w, ".SH SYNOPSIS\n.B galera-supervisor %s\n%s\n", cmd.name, roffText(cmd.usage))
	fmt.Fprintf(w, ".SH DESCRIPTION\n%s\n", roffText(cmd.short))
	if cmd.long != "" {
		fmt.Fprintf(w, ".PP\n.nf\n%s\n.fi\n", roffText(strings.Trim(cmd.long, "\n")))
	}
	fmt.Fprint(w, ".SH SEE ALSO\n.BR galera\\-supervisor (8)")
	for _, other := range commands() {
		if other.name != cmd.name {
			fmt.Fprintf(w, ",\n.BR galera\\-supervisor\\-%s (8)", other.name)
		}
	}
	fmt.Fprint(w, "\n")
}

// roffText escapes text for a roff body: backslashes, and lines that
// would start with a control character.
func roffText(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
		// A leading "-" is fine, but "\-" keeps groff from hyphenating options.
		lines[i] = strings.ReplaceAll(lines[i], "--", `\-\-`)
	}
	return strings.Join(lines, "\n")
}
