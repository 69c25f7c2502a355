package nativebackup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/mbstream"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
)

// fakeBackup plays mariadb-backup (the test binary re-run under that name):
// --backup streams a small backup, or fails as a wrong password does;
// --prepare succeeds; --version says 10.11. It checks the password came only by MYSQL_PWD.
func fakeBackup(args []string) int {
	for _, a := range args {
		if strings.Contains(a, "s3cret") {
			fmt.Fprintln(os.Stderr, "fake mariadb-backup: password on the command line")
			return 3
		}
	}
	switch {
	case slices.Contains(args, "--version"):
		fmt.Println("mariadb-backup based on MariaDB server 10.11.19-MariaDB debian-linux-gnu (x86_64)")
		return 0
	case slices.Contains(args, "--prepare"):
		fmt.Println("fake prepare ok")
		return 0
	case !slices.Contains(args, "--backup"):
		return 2
	}
	if os.Getenv("MYSQL_PWD") == "midway" {
		// Half a stream, then the failure, as a backup that loses its
		// connection or redo log mid-copy.
		var buf bytes.Buffer
		mbstream.NewWriter(&buf).WriteFileChunks("ibdata1", bytes.NewReader(bytes.Repeat([]byte("n"), 100000)), 30000)
		os.Stdout.Write(buf.Bytes()[:buf.Len()/2])
		fmt.Fprintln(os.Stderr, "[00] 2026-11-21 12:00:01 [ERROR] InnoDB: xtrabackup_copy_logfile() failed: redo log overwritten")
		return 1
	}
	if os.Getenv("MYSQL_PWD") != "s3cret" || !slices.Contains(args, "--user=sst") {
		fmt.Fprintln(os.Stderr, "[00] 2026-11-21 12:00:00 Connecting to server host: localhost")
		fmt.Fprintln(os.Stderr, "[00] 2026-11-21 12:00:00 Failed to connect to MariaDB server: Access denied for user 'sst'@'localhost' (using password: YES).")
		return 1
	}
	w := mbstream.NewWriter(os.Stdout)
	w.WriteFileChunks("ibdata1", bytes.NewReader(bytes.Repeat([]byte("n"), 100000)), 30000)
	w.Bytes("db/t.ibd", []byte("new table"))
	w.Bytes("xtrabackup_checkpoints", []byte("backup_type = full-backuped\n"))
	w.Bytes("donor_galera_info", []byte(testState+"\n"))
	fmt.Fprintln(os.Stderr, "[00] completed OK!")
	return 0
}

// withFakeBackup puts a mariadb-backup that is this test binary first in PATH.
func withFakeBackup(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(dir, "mariadb-backup")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
}

func donorSession(t *testing.T, address, auth string, out io.Writer) *sst.Session {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ibdata1"), []byte("donor data"), 0o640)
	return &sst.Session{
		Method: Name,
		Args: &sst.Args{Role: sst.Donor, Address: address, Datadir: dir, GTID: strings.Fields(testState)[0],
			GTIDDomainID: "0", Socket: filepath.Join(dir, "no.sock")},
		Env:      sst.Env{Auth: auth},
		Options:  sst.MapOptions{},
		Proto:    sst.NewProtocol(out, sst.Donor, false),
		Log:      logtest.New(t),
		Progress: progress.Discard,
		Datadir:  dir,
	}
}

// TestDonorJoinerFakeBackup runs both roles end to end against a fake
// mariadb-backup: the snapshot replaces the joiner's datadir (kept files
// stay), the donor prints done only after the joiner's confirmation.
func TestDonorJoinerFakeBackup(t *testing.T) {
	withFakeBackup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := oldDatadir(t)
	j := startJoiner(t, ctx, dir)
	var out bytes.Buffer
	ds := donorSession(t, j.addr.String(), "sst:s3cret", &out)
	if err := (Method{}).Donor(ctx, ds); err != nil {
		t.Fatalf("donor: %v", err)
	}
	if got := out.String(); got != "done "+testState+"\n" {
		t.Errorf("donor stdout %q", got)
	}
	lines, err := j.wait(t)
	if err != nil {
		t.Fatalf("joiner: %v", err)
	}
	if len(lines) != 1 || lines[0] != testState {
		t.Errorf("joiner stdout after ready %q", lines)
	}
	for name, want := range map[string]string{"db/t.ibd": "new table", "grastate.dat": "# GALERA saved state\nversion: 2.1\nuuid: x\nseqno: -1\n"} {
		if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != want {
			t.Errorf("%s: %q, want %q", name, b, want)
		}
	}
	for _, gone := range []string{"xtrabackup_checkpoints", "donor_galera_info", sst.StagingDirName} {
		if _, err := os.Stat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("%s left in the datadir", gone)
		}
	}
	for _, log := range []string{PrepareLog, MoveLog} {
		if fi, err := os.Stat(filepath.Join(dir, log)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", log, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(ds.Datadir, BackupLog)); !strings.Contains(string(b), "completed OK") {
		t.Errorf("donor's %s: %q", BackupLog, b)
	}
}

// TestDonorBackupFails: when mariadb-backup fails, its reason reaches the
// joiner's error, both fail, and the joiner's datadir is left alone. A
// backup that dies after writing part of its stream does not end the
// stream cleanly, so the joiner does not take the short stream for the
// whole story either.
func TestDonorBackupFails(t *testing.T) {
	for _, tc := range []struct{ name, auth, want string }{
		{"wrong credentials", "sst:wrong", "Access denied for user 'sst'@'localhost'"},
		{"fails mid-stream", "sst:midway", "xtrabackup_copy_logfile() failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withFakeBackup(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dir := oldDatadir(t)
			before := hashTree(t, dir, skipLogs)
			j := startJoiner(t, ctx, dir)
			var out bytes.Buffer
			derr := (Method{}).Donor(ctx, donorSession(t, j.addr.String(), tc.auth, &out))
			if derr == nil || sst.ExitCode(derr) != 22 || !strings.Contains(derr.Error(), tc.want) {
				t.Errorf("donor: %v (exit %d)", derr, sst.ExitCode(derr))
			}
			if out.Len() != 0 {
				t.Errorf("donor printed %q", out.String())
			}
			lines, err := j.wait(t)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("joiner: %v", err)
			}
			if len(lines) != 0 {
				t.Errorf("joiner printed %q", lines)
			}
			if hashTree(t, dir, skipLogs) != before {
				t.Errorf("joiner's datadir changed")
			}
		})
	}
}
