package nativebackup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// Binaries, in the order the stock script looks for them.
var backupBinaries = []string{"mariadb-backup", "mariabackup"}

// errNoBackupTool is the stock script's exit status when mariadb-backup is
// missing.
const errNoBackupTool = syscall.Errno(42)

// Log names in the datadir. The stock script writes mariabackup.*.log; the
// issue and the KB use the mariadb-backup.* names.
const (
	BackupLog  = "mariadb-backup.backup.log"
	PrepareLog = "mariadb-backup.prepare.log"
	MoveLog    = "mariadb-backup.move.log"
)

// findBackup returns the path of mariadb-backup (or mariabackup) in PATH.
func findBackup(lookPath func(string) (string, error)) (string, error) {
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	var errs []error
	for _, b := range backupBinaries {
		p, err := lookPath(b)
		if err == nil {
			return p, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("find mariadb-backup in PATH %q: %w", os.Getenv("PATH"), errors.Join(errs...))
}

// Server options the stock parser takes out of --mysqld-args (it passes
// them by other means or they must not reach mariadb-backup).
var droppedMysqldArgs = map[string]bool{
	"defaults-file": true, "defaults-extra-file": true, "defaults-group-suffix": true,
	"user": true, "port": true, "socket": true,
	"datadir": true, "innodb-data-home-dir": true, "innodb-log-group-home-dir": true,
	"innodb-undo-directory": true, "aria-log-dir-path": true,
	"innodb-buffer-pool-filename": true, "innodb-buffer-pool-size": true,
	"innodb-force-recovery": true, "log-bin": true, "log-bin-index": true, "log-basename": true,
}

// filterMysqldArgs keeps the server arguments mariadb-backup may see after
// --mysqld-args, as wsrep_sst_common keeps WSREP_SST_OPT_MYSQLD.
func filterMysqldArgs(args []string) []string {
	var out []string
	skipNext := false
	for _, a := range args {
		if skipNext {
			skipNext = false
			continue
		}
		if !strings.HasPrefix(a, "--") {
			out = append(out, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		name = strings.TrimPrefix(strings.ReplaceAll(name, "_", "-"), "loose-")
		if droppedMysqldArgs[name] {
			// "--user mysql" spelled as two words takes the next one.
			skipNext = !hasValue && name != "log-bin"
			continue
		}
		out = append(out, a)
	}
	return out
}

// defaultsArgs are the --defaults-* options, which mariadb-backup wants first.
func defaultsArgs(file, extra, suffix string) []string {
	var a []string
	if file != "" {
		a = append(a, "--defaults-file="+file)
	}
	if extra != "" {
		a = append(a, "--defaults-extra-file="+extra)
	}
	if suffix != "" {
		a = append(a, "--defaults-group-suffix="+suffix)
	}
	return a
}

// backupSpec is everything the donor's mariadb-backup --backup needs.
type backupSpec struct {
	DefaultsFile, DefaultsExtraFile, DefaultsGroupSuffix string
	Datadir, TargetDir, TmpDir                           string
	Parallel                                             string // backup-threads
	User                                                 string
	Socket                                               string
	Host                                                 string // use-extra: host and extra-port
	Port                                                 string
	OpenFilesLimit                                       string // --open-files-limit=N, or ""
	InnoBackupOpts                                       string // inno-backup-opts, split on blanks
	MysqldArgs                                           []string
}

func (b backupSpec) args() []string {
	a := defaultsArgs(b.DefaultsFile, b.DefaultsExtraFile, b.DefaultsGroupSuffix)
	a = append(a, "--backup", "--no-version-check")
	if b.Parallel != "" {
		a = append(a, "--parallel="+b.Parallel)
	}
	a = append(a, "--databases-exclude=lost+found")
	if b.OpenFilesLimit != "" {
		a = append(a, b.OpenFilesLimit) // before inno-backup-opts: the user's own value wins
	}
	a = append(a, strings.Fields(b.InnoBackupOpts)...)
	if b.TmpDir != "" {
		a = append(a, "--tmpdir="+b.TmpDir)
	}
	if b.User != "" {
		a = append(a, "--user="+b.User)
	}
	if b.Port != "" {
		a = append(a, "--host="+b.Host, "--port="+b.Port)
	} else if b.Socket != "" {
		a = append(a, "--socket="+b.Socket)
	}
	a = append(a, "--galera-info", "--stream=mbstream", "--target-dir="+b.TargetDir, "--datadir="+b.Datadir)
	if m := filterMysqldArgs(b.MysqldArgs); len(m) > 0 {
		a = append(a, "--mysqld-args")
		a = append(a, m...)
	}
	return a
}

// prepareSpec is the joiner's mariadb-backup --prepare.
type prepareSpec struct {
	TargetDir           string
	OpenFilesLimit      string // --open-files-limit=N, or ""
	UseMemory           string
	InnoDBForceRecovery string
	InnoApplyOpts       string
}

func (p prepareSpec) args() []string {
	a := []string{"--prepare", "--no-version-check"}
	if p.OpenFilesLimit != "" {
		a = append(a, p.OpenFilesLimit) // before inno-apply-opts: the user's own value wins
	}
	if p.InnoDBForceRecovery != "" {
		a = append(a, "--innodb-force-recovery="+p.InnoDBForceRecovery)
	}
	a = append(a, strings.Fields(p.InnoApplyOpts)...)
	if p.UseMemory != "" {
		a = append(a, "--use-memory="+p.UseMemory)
	}
	return append(a, "--target-dir="+p.TargetDir, "--datadir="+p.TargetDir)
}

// logErrors picks the lines of a mariadb-backup log that explain a failure,
// so that the donor can send them to the joiner: errors, and the last lines.
func logErrors(lines []string, max int) string {
	var errs, tail []string
	for _, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		tail = append(tail, line)
		if len(tail) > 3 {
			tail = tail[1:]
		}
		l := strings.ToLower(line)
		if strings.Contains(l, "error") || strings.Contains(l, "denied") || strings.Contains(l, "failed") {
			errs = append(errs, line)
		}
	}
	pick := errs
	if len(pick) == 0 {
		pick = tail
	}
	if len(pick) > max {
		pick = pick[len(pick)-max:]
	}
	return strings.Join(pick, " | ")
}

// quoteArgs renders argv for a log line.
func quoteArgs(argv []string) string {
	var b bytes.Buffer
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if strings.ContainsAny(a, " \t'\"$\\") {
			fmt.Fprintf(&b, "%q", a)
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}
