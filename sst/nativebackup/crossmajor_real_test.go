package nativebackup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// wrapperScript plays a mariadb-backup of MariaDB 10.6: its --version
// says so; everything else is the real (10.11) binary.
const wrapperScript = `#!/bin/sh
if [ "$1" = "--version" ]; then
	echo "mariadb-backup based on MariaDB server 10.6.99-MariaDB debian-linux-gnu (x86_64)"
	exit 0
fi
exec /usr/bin/mariadb-backup "$@"
`

// TestRealNativeBackupPreflight (MDEV-27437): a donor whose mariadb-backup
// ([sst] mariadb-backup) is of a major with another redo format (10.6, by
// a wrapper) is refused by
// the 10.11 joiner before any data moves, naming [sst]
// prepare-mariadb-backup; with that option naming a mariadb-backup of the
// donor's format, the joiner prepares with it and joins Synced with equal
// tables. Then node2's datadir, a tmpfs, fills while a slowed SST runs:
// refused naming the path and the bytes needed, staging removed, the old
// datadir intact, the donor unharmed.
func TestRealNativeBackupPreflight(t *testing.T) {
	galeratest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	wrap, err := os.MkdirTemp("", "gs-nb-wrap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(wrap) })
	os.Chmod(wrap, 0o755)
	old := filepath.Join(wrap, "mariadb-backup-10.6")
	if err := os.WriteFile(old, []byte(wrapperScript), 0o755); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, ctx, galeratest.Config{}, 16<<20)
	n1, n2 := c.Node(1), c.Node(2)
	if err := n1.SetSST(map[string]string{"mariadb-backup": old}); err != nil {
		t.Fatal(err)
	}
	// node2's datadir is a filesystem of its own, for "disk fills".
	if err := os.MkdirAll(n2.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1g,mode=0755", "gs-test-tmpfs", n2.DataDir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		n2.Kill()
		if out, err := exec.Command("umount", n2.DataDir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", n2.DataDir, err, out)
		}
	})
	t.Run("refused", func(t *testing.T) {
		o1, _ := os.ReadFile(n1.ErrorLog)
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		failedJoin(ctx, t, c, "cross-major", "set [sst] prepare-mariadb-backup to a mariadb-backup of 10.5 to 10.7", false, nil)
		log, _ := os.ReadFile(n2.ErrorLog)
		for _, want := range []string{"redo format of MariaDB 10.5 to 10.7 (its mariadb-backup 10.6.99)", "10.11.", "MDEV-27437"} {
			if !strings.Contains(string(log), want) {
				t.Errorf("the joiner's log does not say %q", want)
			}
		}
		dl, _ := os.ReadFile(n1.ErrorLog)
		if newer := string(dl[len(o1):]); strings.Contains(newer, "--backup") {
			t.Errorf("the donor started its backup:\n%s", lastLines(newer, 20))
		}
	})
	t.Run("prepare-mariadb-backup", func(t *testing.T) {
		if err := n2.SetSST(map[string]string{"prepare-mariadb-backup": old}); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(n2.DataDir, "grastate.dat"))
		if err := n2.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := n2.WaitSynced(ctx); err != nil {
			t.Fatalf("node2 did not join: %v\n%s", err, n2.LogTail(30))
		}
		compareTables(ctx, t, n1, n2)
		log, _ := os.ReadFile(n2.ErrorLog)
		if !strings.Contains(string(log), "command="+old+" version=10.6.99") {
			t.Errorf("the joiner did not prepare with the option's mariadb-backup:\n%s", lastLines(string(log), 30))
		}
	})
	t.Run("disk fills mid-transfer", func(t *testing.T) {
		if err := n2.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := n1.SetSST(map[string]string{"rlimit": "8M"}); err != nil {
			t.Fatal(err)
		}
		defer n1.SetSST(map[string]string{"rlimit": ""})
		before1, err := n1.Checksums(ctx)
		if err != nil {
			t.Fatal(err)
		}
		filler := filepath.Join(n2.DataDir, "filler.log") // kept by the SST, skipped by oldDataHash
		defer os.Remove(filler)
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		failedJoin(ctx, t, c, "disk fills", "native-backup: not enough space: the disk filled while extracting into "+n2.DataDir, false, func(ctx context.Context) {
			waitStaged(ctx, t, n2.DataDir, 8<<20)
			if err := galeratest.FillDisk(filler); err != nil {
				t.Error(err)
			}
		})
		log, _ := os.ReadFile(n2.ErrorLog)
		if !strings.Contains(string(log), "MB more (plus") {
			t.Errorf("the joiner's error does not say how much more it needed:\n%s", lastLines(string(log), 20))
		}
		if err := n1.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
		after1, err := n1.Checksums(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := galeratest.CompareChecksums(before1, after1); err != nil {
			t.Errorf("the donor's tables changed: %v", err)
		}
	})
}
