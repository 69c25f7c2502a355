package main

import (
	"context"
	"strings"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"github.com/galera-supervisor/galera-supervisor/schema"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/nativebackup"
	"github.com/galera-supervisor/galera-supervisor/sst/nativecopy"
)

// The SST methods this binary provides. Each is also reachable as a link
// named wsrep_sst_<name>. Add a method with one line here.
func init() {
	sst.Register(nativecopy.Name, nativecopy.Method{})
	sst.Register(nativebackup.Name, nativebackup.Method{})
}

func cmdSST() *command {
	return &command{
		name:  "sst",
		usage: "[--method native-copy] --role joiner|donor --address ADDR --datadir DIR [server SST options]",
		short: "run one SST as mariadbd would (same as wsrep_sst_<method>)",
		long:  sstHelp(),
		run: func(ctx context.Context, c *cli, args []string) error {
			method, rest := sstMethodArg(args)
			return runSSTMethod(ctx, c, method, rest)
		},
	}
}

// sstMethodArg takes --method off args (before --mysqld-args only, which
// passes mariadbd's own arguments through); native-copy by default.
func sstMethodArg(args []string) (string, []string) {
	method := nativecopy.Name
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--mysqld-args" {
			rest = append(rest, args[i:]...)
			break
		}
		if v, ok := strings.CutPrefix(a, "--method="); ok {
			method = v
			continue
		}
		if a == "--method" && i+1 < len(args) {
			method = args[i+1]
			i++
			continue
		}
		rest = append(rest, a)
	}
	return method, rest
}

// runSSTMethod runs the SST contract for method. The error carries the
// errno exit status (sst.ExitCode) that mariadbd turns into the SST's
// result; it never reads as a clean cancellation.
func runSSTMethod(ctx context.Context, c *cli, method string, args []string) error {
	// Under systemd mariadbd's stderr is the journal, and so is ours.
	log := logging.New(c.stderr, "wsrep_sst_"+method, logging.TextOptions{Style: logging.SST})
	return sst.Run(ctx, method, args, sst.Config{Stdout: c.stdout, Stderr: c.stderr, Log: log})
}

func sstHelp() string {
	return `
mariadbd runs an SST method as "wsrep_sst_<method>" (found in PATH) with
the arguments and environment of the server's SST contract. Link the
method's name to this binary, e.g.
  ln -s galera-supervisor /usr/bin/wsrep_sst_native-copy
and set wsrep_sst_method=native-copy. "galera-supervisor sst" runs the
same code by hand; --method picks the method (default native-copy).

Methods:
  native-copy   physical copy of the donor's datadir. The donor copies
                everything without a lock first, then takes the server's
                write lock ("flush tables") only to re-send the redo and
                Aria logs and the files that changed meanwhile. Of the
                InnoDB redo log only the live part goes, from the
                checkpoint to the end of the log (MariaDB 10.8+ format,
                unencrypted; other logs go whole). The joiner
                receives into <datadir>/.sst-native, verifies every file
                against the donor's manifest and only then swaps it in;
                the previous datadir is kept until then and restored on
                any failure. Files go where the joiner's own options
                put them (innodb_data_home_dir, innodb_undo_directory,
                innodb_log_group_home_dir, aria_log_dir_path, log_bin,
                log_bin_index); a table's DATA DIRECTORY files (InnoDB
                .isl, MyISAM/Aria symlinks) go to the same path as on
                the donor. Each directory is staged and swapped like the
                datadir; one the joiner cannot write, or a file there
                that no table of the joiner points to, refuses the SST
                before any data moves, naming the table and the path.
                Before that, a preflight compares the two servers:
                the version (a donor of a newer redo format, which
                changed in 10.5 and 10.8, is refused: MariaDB does not
                downgrade; an older one is noted, the joiner's server
                upgrades its files as after rsync), innodb_page_size
                (the donor's from its ibdata1 header),
                lower_case_table_names, a strict
                innodb_checksum_algorithm, the key management plugin
                and each encryption key ID (by SHA-256 digest; keys
                never travel) and the space each filesystem needs; a
                mismatch is refused with both values and what to set.
                With IST possible (--bypass) only the
                position is sent and the joiner's datadir is not touched.
  native-backup the non-blocking method: the donor streams
                "mariadb-backup --backup --stream=mbstream" through the
                same engine while it keeps taking writes; the joiner
                extracts the mbstream natively into staging, runs
                "mariadb-backup --prepare", and swaps the result in with
                the same safety. Logs: mariadb-backup.backup.log (donor),
                mariadb-backup.prepare.log and mariadb-backup.move.log
                (joiner). The prepared files go where the joiner's own
                options put them and DATA DIRECTORY files to the
                donor's path, staged and swapped as by native-copy
                (MyISAM/Aria ones behind their symlinks, where
                mariadb-backup --move-back puts them in the datadir);
                the snapshot is extracted and prepared in the datadir's
                staging first, so that filesystem needs room for all of
                it. With wsrep_sst_auth empty the donor creates a
                temporary user with only the privileges a backup needs
                and drops it when the SST ends, however it ends.
                Before the stream starts, the joiner runs the same
                preflight as native-copy (the space of every filesystem
                included) and compares the donor's
                mariadb-backup version with its own: across the redo
                format changes of 10.5 and 10.8 (MDEV-27437) it prepares
                with [sst] prepare-mariadb-backup (a mariadb-backup of
                the donor's major), and without one refuses, naming it.
                mariadb-backup keeps every InnoDB tablespace open: the
                donor gives it --open-files-limit for them, and refuses
                before any byte moves when its hard RLIMIT_NOFILE
                (LimitNOFILE=, or mariadbd's open_files_limit) is lower.

Contract (stdout is for the server only; logs go to stderr as
"WSREP_SST: [INFO] ..."):
  joiner  prints "ready <host>:<port>/<method>/<secret>" once listening,
          "total N"/"complete N" with --progress 1, and finally
          "<uuid>:<seqno> <domain>" once the data is in place.
  donor   prints "flush tables", waits for <datadir>/tables_flushed,
          "continue" when the lock may go, and "done <uuid>:<seqno>
          <domain>" only after the joiner has confirmed receipt.
  Arguments: --role --address --datadir --defaults-file
  --defaults-extra-file --defaults-group-suffix --parent --progress
  --binlog --binlog-index --local-port --socket --gtid --gtid-domain-id
  --bypass --mysqld-args...; unknown ones are ignored. Credentials come
  only from WSREP_SST_OPT_AUTH. wsrep_sst.pid in the datadir keeps a
  second SST from running; a joiner stops when its mariadbd (--parent)
  goes away.

Where options come from: under "galera-supervisor run", mariadbd's
environment has GALERA_SUPERVISOR_OPTIONS=<runtime-dir>/options-<pid>.json,
the supervisor's snapshot of its last good configuration ([sst] as last
edited, the server groups as mariadbd started with them; see "help run"),
and the SST reads its options from there, so that an edit the supervisor
refused never reaches an SST. Without it, or when it was read from other
files than --defaults-file/--defaults-extra-file/--defaults-group-suffix
name, the SST reads the option files itself.

[sst] options: every option the stock scripts and the MariaDB
documentation name, and the native methods' own. "config check", the
supervisor (at its start and on every edit) and the SST check them alike;
a value one refuses, all refuse. Durations count seconds or take a unit
(300, 300s, 5m); sizes and rates take K, M, G, T (powers of 1024). What
the native methods do with each: honoured as stock does; mapped to their
own equivalent; warned about (logged by the SST, a warning in "config
check") and ignored, saying what to use instead; or refused.
` + schema.Help(schema.SST) + `
Logs: each SST writes <datadir>/<method>.<role>.log (native-copy.joiner.log,
native-backup.donor.log, ...), the lines it prints on stderr: "WSREP_SST:
[INFO] <message> key=value ... (<timestamp>)", a short fixed message and
its facts as attributes (sst_method, sst_role, sst_peer, ...). A joiner keeps
it through the swap and a donor never sends it. When stderr is the journal
(under systemd), entries carry SST_ROLE, SST_METHOD, SST_PEER, SST_BYTES,
SST_SECONDS, SST_RESULT and, for SST started, finished and failed, a
MESSAGE_ID that "journalctl -x" explains; "journalctl -u mariadb
SST_RESULT=failed" lists the failures. Before a new SST the previous logs
are gzipped into the archive as <name>.<YYYY.MM.DD-HH.MM.SS.N>.gz.
The sst-log-archive* and sst-syslog* options above say how.

Files larger than 256 KiB go disk to disk with O_DIRECT on both sides,
bypassing the page cache (the redo and Aria logs excepted: the donor
compares them block by block again under the lock); where the file system
refuses O_DIRECT, the page cache is used.

Exit codes are errnos, which the server reports negated:
  2 ENOENT datadir or file missing      16 EBUSY port taken
  4 EINTR interrupted, parent gone      22 EINVAL bad arguments or options
  13 EACCES certificate or permission   28 ENOSPC joiner disk too small
  32 EPIPE transfer failed              71 EPROTO peer sent something wrong
  110 ETIMEDOUT no donor in time        111 ECONNREFUSED joiner unreachable
  114 EALREADY a previous SST still runs (wsrep_sst.pid)
`
}
