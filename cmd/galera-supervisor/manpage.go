package main

import (
	"fmt"
	"io"
	"strings"
)

// manPage writes galera-supervisor(8) from the same texts as --help, so the
// two cannot drift apart (packaging/galera-supervisor.8; a test keeps the
// committed page current).
func manPage(w io.Writer) {
	fmt.Fprint(w, `.\" Generated from the help texts of galera-supervisor; do not edit.
.\" Regenerate: go test ./cmd/galera-supervisor -run TestManPage -update
.TH GALERA-SUPERVISOR 8 "" "galera-supervisor" "System Administration"
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
`)
	for _, cmd := range commands() {
		fmt.Fprintf(w, ".SS %s\n.B galera-supervisor %s\n%s\n.PP\n%s\n", cmd.name, cmd.name, roffText(cmd.usage), roffText(cmd.short))
		if cmd.long != "" {
			fmt.Fprintf(w, ".PP\n.nf\n%s\n.fi\n", roffText(strings.TrimRight(cmd.long, "\n")))
		}
	}
	fmt.Fprint(w, `.SH EXIT STATUS
Each command's exit codes are listed with it above; those of
.B run
are what a unit's Restart= and RestartPreventExitStatus= act on. As an SST
method the exit codes are errnos, as mariadbd expects (see
.BR sst ).
.SH FILES
.TP
.I /usr/lib/systemd/system/galera-supervisor.service
the unit;
.I galera-supervisor@.service
runs several nodes on one host.
.TP
.I <datadir>/grastate.dat
the node's saved position.
.TP
.I <datadir>/.sst-native
the staging directory of a native SST joiner.
.SH SEE ALSO
.BR mariadbd (8),
.BR systemd.service (5),
.BR systemctl (1),
.BR journalctl (1)
`)
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
