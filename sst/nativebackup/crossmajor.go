package nativebackup

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"regexp"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst"
)

// preflightSeg, a third segment of the joiner's address, says that the
// joiner checks the donor's state message before any data moves: the
// donor then waits for msgGo. (A donor of an older version ignores it; a
// joiner of an older version does not add it, and the donor streams at
// once, as before.)
const preflightSeg = "preflight"

// reBackupVersion finds the server version in mariadb-backup --version:
// "mariadb-backup based on MariaDB server 10.11.19-MariaDB ...".
var reBackupVersion = regexp.MustCompile(`(\d+)\.(\d+)\.(\d+)-MariaDB`)

// backupVersion is the server version the mariadb-backup binary bin is
// built from ("10.11.19"). It runs in dir.
func backupVersion(ctx context.Context, bin, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w: %.200s", bin, err, out)
	}
	m := reBackupVersion.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%s --version: no MariaDB version in %.200q", bin, out)
	}
	return fmt.Sprintf("%s.%s.%s", m[1], m[2], m[3]), nil
}

// prepareBinary picks the mariadb-backup that can prepare the donor's
// backup, before any data moves: this node's own when its redo format is
// the donor's, else [sst] prepare-mariadb-backup, which must be. Without
// one, it refuses, naming the option.
func prepareBinary(ctx context.Context, s *sst.Session, donorVersion, peer string) (string, error) {
	bin, err := backupBinary(s)
	if err != nil {
		return "", err
	}
	if donorVersion == "" {
		s.Log.Warn("the donor did not say its mariadb-backup version (an older galera-supervisor): redo formats not compared", slog.String("sst_peer", peer))
		return bin, nil
	}
	own, err := backupVersion(ctx, bin, s.Datadir)
	if err != nil {
		return "", sst.Errorf(sst.EINVAL, "native-backup: %v", err)
	}
	dg, dname := sst.RedoFormat(donorVersion)
	og, oname := sst.RedoFormat(own)
	alt, _, err := s.Values().String("prepare-mariadb-backup")
	if err != nil {
		return "", sst.Errorf(sst.EINVAL, "native-backup: %v", err)
	}
	s.Log.Info("preflight: mariadb-backup versions", slog.String("sst_peer", peer), slog.String("donor_version", donorVersion), slog.String("donor_redo_format", dname),
		slog.String("command", bin), slog.String("joiner_version", own), slog.String("joiner_redo_format", oname))
	if og == dg {
		return bin, nil
	}
	if alt == "" {
		return "", sst.Errorf(sst.EINVAL, "native-backup: the donor's backup is in the redo format of MariaDB %s (its mariadb-backup %s), which this joiner's %s %s (%s) cannot prepare (MDEV-27437): set [sst] prepare-mariadb-backup to a mariadb-backup of %s on this node, or use native-copy",
			dname, donorVersion, bin, own, oname, dname)
	}
	v, err := backupVersion(ctx, alt, s.Datadir)
	if err != nil {
		return "", sst.Errorf(sst.EINVAL, "native-backup: [sst] prepare-mariadb-backup=%s: %v", alt, err)
	}
	if g, name := sst.RedoFormat(v); g != dg {
		return "", sst.Errorf(sst.EINVAL, "native-backup: [sst] prepare-mariadb-backup=%s is mariadb-backup %s (redo format of %s); the donor's backup (mariadb-backup %s) needs one of %s",
			alt, v, name, donorVersion, dname)
	}
	s.Log.Info("preparing with [sst] prepare-mariadb-backup, of the donor's redo format", slog.String("command", alt), slog.String("version", v))
	return alt, nil
}

// backupBinary is the mariadb-backup this node runs: [sst] mariadb-backup,
// else the first of backupBinaries in PATH. (mariadbd puts its own bin
// directory first in the SST's PATH, so PATH alone cannot pick another.)
func backupBinary(s *sst.Session) (string, error) {
	bin, _, err := s.Values().String("mariadb-backup")
	if err != nil {
		return "", sst.Errorf(sst.EINVAL, "native-backup: %v", err)
	}
	if bin == "" {
		bin, err = findBackup(nil)
		if err != nil {
			return "", sst.WithErrno(errNoBackupTool, err)
		}
		return bin, nil
	}
	if _, err := exec.LookPath(bin); err != nil {
		return "", sst.WithErrno(errNoBackupTool, fmt.Errorf("native-backup: [sst] mariadb-backup=%s: %w", bin, err))
	}
	return bin, nil
}
