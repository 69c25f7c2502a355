package sst

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
)

// treeHash hashes every path, mode, and file content under dir.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := rel + " " + fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			line += " " + hex.EncodeToString(s[:])
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	h.Write([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(h.Sum(nil))
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

var oldDatadir = map[string]string{
	"grastate.dat":       "# GALERA saved state\nseqno: 5\n",
	"galera.cache":       "gcache",
	"server-cert.pem":    "pem",
	"node.err":           "log",
	"ibdata1":            "old ibdata",
	"ib_logfile0":        "old redo",
	"mysql/user.MAI":     "old user",
	"bench/t.ibd":        "old table",
	"olddb/gone.ibd":     "only in the old datadir",
	"aria_log_control":   "old aria",
	"mysql-bin.000001":   "old binlog",
	"mysql-bin.index":    "./mysql-bin.000001\n",
	"ib_buffer_pool":     "dump",
	"lost+found/x":       "fs",
	"host.pid":           "123",
	"mysqld.sock.lock":   "x",
	"subdir-kept.log":    "kept",
	"RPM_UPGRADE_MARKER": "m",
}

var newSnapshot = map[string]string{
	"ibdata1":          "new ibdata",
	"ib_logfile0":      "new redo",
	"mysql/user.MAI":   "new user",
	"bench/t.ibd":      "new table",
	"newdb/t.ibd":      "new db",
	"aria_log_control": "new aria",
	"mysql-bin.000002": "new binlog",
	"mysql-bin.index":  "./mysql-bin.000002\n",
}

// baseFiles are files of the old datadir that the new snapshot keeps as
// bases of a delta (old and new contents): one unchanged, one patched and
// grown, one patched and shrunk. Every swap test goes through their
// in-place patching and its undo journal.
var baseFiles = map[string][2]string{
	"bench/same.ibd":   {strings.Repeat("s", 2*cmpUnit), strings.Repeat("s", 2*cmpUnit)},
	"bench/grow.ibd":   {strings.Repeat("g", 3*cmpUnit), strings.Repeat("g", cmpUnit) + strings.Repeat("G", cmpUnit) + strings.Repeat("g", cmpUnit) + "tail"},
	"bench/shrink.ibd": {strings.Repeat("k", 3*cmpUnit), "K" + strings.Repeat("k", cmpUnit+100)},
}

func init() {
	for rel, c := range baseFiles {
		oldDatadir[rel] = c[0]
	}
}

func stage(t *testing.T, root string) (*Staging, []ManifestEntry) {
	t.Helper()
	st, err := NewStaging(root, nil, logtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	var man []ManifestEntry
	for p, c := range newSnapshot {
		f, err := st.Create(p, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(c)
		f.Close()
		sum := fmt.Sprintf("%x", sha256.Sum256([]byte(c)))
		st.Written(p, int64(len(c)), sum)
		man = append(man, ManifestEntry{Path: p, Size: int64(len(c)), Sum: sum})
	}
	for rel, c := range baseFiles {
		b, err := st.Base(rel)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.WriteAt([]byte(c[1]), 0); err != nil {
			t.Fatal(err)
		}
		if err := b.End(int64(len(c[1]))); err != nil {
			t.Fatal(err)
		}
		man = append(man, ManifestEntry{Path: rel, Size: int64(len(c[1]))})
	}
	return st, man
}

// renames are the ways a swap's renames behave: on one filesystem, and on
// an overlayfs datadir whose entries come from a lower layer, where every
// rename of a directory fails with EXDEV (the swap copies it instead).
var renames = map[string]func(oldpath, newpath string) error{
	"rename": nil,
	"exdev": func(oldpath, newpath string) error {
		if fi, err := os.Lstat(oldpath); err == nil && fi.IsDir() {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EXDEV}
		}
		return os.Rename(oldpath, newpath)
	},
}

func TestStagingSwap(t *testing.T) {
	for name, rename := range renames {
		t.Run(name, func(t *testing.T) { testStagingSwap(t, rename) })
	}
}

func testStagingSwap(t *testing.T, rename func(string, string) error) {
	root := t.TempDir()
	writeFiles(t, root, oldDatadir)
	st, man := stage(t, root)
	st.rename = rename
	if err := st.Verify(man, "donor"); err != nil {
		t.Fatal(err)
	}
	if err := Swap(st); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for p, c := range newSnapshot {
		want[p] = c
	}
	for p, c := range baseFiles {
		want[p] = c[1]
	}
	for _, kept := range []string{"grastate.dat", "galera.cache", "server-cert.pem", "node.err", "lost+found/x", "host.pid", "subdir-kept.log", "RPM_UPGRADE_MARKER"} {
		want[kept] = oldDatadir[kept]
	}
	got := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			b, _ := os.ReadFile(p)
			got[rel] = string(b)
		}
		return nil
	})
	for p, c := range want {
		if got[p] != c {
			t.Errorf("%s = %q, want %q", p, got[p], c)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected %s after swap", p)
		}
	}
}

func TestStagingSwapFailureLeavesOldDatadir(t *testing.T) {
	for name, rename := range renames {
		t.Run(name, func(t *testing.T) { testStagingSwapFailure(t, rename) })
	}
}

func testStagingSwapFailure(t *testing.T, rename func(string, string) error) {
	// Learn the steps of a successful swap, then fail at each in turn.
	var steps []string
	{
		root := t.TempDir()
		writeFiles(t, root, oldDatadir)
		st, _ := stage(t, root)
		st.rename = rename
		st.failpoint = func(step string) error { steps = append(steps, step); return nil }
		if err := Swap(st); err != nil {
			t.Fatal(err)
		}
	}
	if len(steps) < 10 {
		t.Fatalf("only %d swap steps seen: %v", len(steps), steps)
	}
	for _, failAt := range steps {
		t.Run(failAt, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, oldDatadir)
			before := treeHash(t, root)
			st, _ := stage(t, root)
			st.rename = rename
			// One failure: the rollback's own moves (a copy back, on
			// EXDEV) pass through the same steps and succeed.
			failed := false
			st.failpoint = func(step string) error {
				if step == failAt && !failed {
					failed = true
					return errors.New("injected failure")
				}
				return nil
			}
			if err := Swap(st); err == nil {
				t.Fatal("Swap succeeded despite the failure")
			}
			st.Abort()
			if after := treeHash(t, root); after != before {
				t.Fatalf("old datadir changed after a failure at %s", failAt)
			}
			for _, n := range []string{OldDirName, JournalName, MoveName, UndoName, UndoName + ".tmp"} {
				if _, err := os.Lstat(filepath.Join(root, n)); err == nil {
					t.Errorf("%s left after a failure at %s", n, failAt)
				}
			}
		})
	}
}

// A crash (no rollback in-process) at each step is undone by Recover.
func TestStagingCrashRecovery(t *testing.T) {
	for name, rename := range renames {
		t.Run(name, func(t *testing.T) { testStagingCrashRecovery(t, rename) })
	}
}

func testStagingCrashRecovery(t *testing.T, rename func(string, string) error) {
	var steps []string
	{
		root := t.TempDir()
		writeFiles(t, root, oldDatadir)
		st, _ := stage(t, root)
		st.rename = rename
		st.failpoint = func(step string) error { steps = append(steps, step); return nil }
		Swap(st)
	}
	errCrash := errors.New("crash")
	for _, crashAt := range steps {
		t.Run(crashAt, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, oldDatadir)
			before := treeHash(t, root)
			st, _ := stage(t, root)
			st.rename = rename
			sw := &swap{s: st, old: filepath.Join(root, OldDirName), journal: filepath.Join(root, JournalName)}
			st.failpoint = func(step string) error {
				if step == crashAt {
					return errCrash
				}
				return nil
			}
			if crashAt == "commit" {
				// The commit point: after it, the new snapshot stands.
				if err := sw.do(); err != nil {
					t.Fatal(err)
				}
				os.Rename(sw.old, filepath.Join(root, TrashDirName))
				if err := Recover(root, logtest.New(t)); err != nil {
					t.Fatal(err)
				}
				if b, _ := os.ReadFile(filepath.Join(root, "bench/t.ibd")); string(b) != "new table" {
					t.Fatalf("committed swap not kept: %q", b)
				}
				for rel, c := range baseFiles {
					if b, _ := os.ReadFile(filepath.Join(root, rel)); string(b) != c[1] {
						t.Fatalf("committed swap: %s patched in place rolled back", rel)
					}
				}
				return
			}
			if err := sw.do(); !errors.Is(err, errCrash) {
				t.Fatalf("do: %v", err)
			}
			// The process dies here; the next start recovers.
			if err := Recover(root, logtest.New(t)); err != nil {
				t.Fatal(err)
			}
			os.RemoveAll(st.Dir)
			if after := treeHash(t, root); after != before {
				t.Fatalf("old datadir not restored after a crash at %s", crashAt)
			}
			for _, n := range []string{OldDirName, JournalName, MoveName, UndoName, UndoName + ".tmp"} {
				if _, err := os.Lstat(filepath.Join(root, n)); err == nil {
					t.Errorf("%s left after recovery from a crash at %s", n, crashAt)
				}
			}
		})
	}
}

// A joiner killed mid-swap leaves a half-swapped root and its staging;
// Cleanup puts the old contents back and removes the rest.
func TestCleanup(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, oldDatadir)
	before := treeHash(t, root)
	st, _ := stage(t, root)
	sw := &swap{s: st, old: filepath.Join(root, OldDirName), journal: filepath.Join(root, JournalName)}
	// Killed halfway through moving the old contents aside, after the
	// bases were patched in place.
	half := 0
	st.failpoint = func(step string) error {
		if !strings.HasPrefix(step, "move-aside:") {
			return nil
		}
		if half++; half == 2 {
			return errors.New("killed")
		}
		return nil
	}
	if err := sw.do(); err == nil {
		t.Fatal("swap survived its failpoint")
	}
	// While the joiner lives, its work is left alone.
	rec := logtest.NewRecorder()
	if err := Cleanup(root, rec.Logger()); err != nil {
		t.Fatal(err)
	}
	said := rec.Messages()
	if _, err := os.Lstat(filepath.Join(root, OldDirName)); err != nil || len(said) != 1 || !strings.Contains(said[0], "an SST is working") {
		t.Fatalf("Cleanup touched a live joiner's swap (%v), said %q", err, said)
	}
	// Then it is killed: the kernel drops its lock, the rollback never ran.
	st.unlock()
	rec = logtest.NewRecorder()
	if err := Cleanup(root, rec.Logger()); err != nil {
		t.Fatal(err)
	}
	said = rec.Messages()
	if after := treeHash(t, root); after != before {
		t.Errorf("old contents not restored: %s", strings.Join(said, "; "))
	}
	for _, n := range []string{StagingDirName, OldDirName, JournalName, UndoName} {
		if _, err := os.Lstat(filepath.Join(root, n)); err == nil {
			t.Errorf("%s left in root", n)
		}
	}
	if len(said) != 3 || !strings.Contains(said[1], "patched in place") {
		t.Errorf("said %q, want the rollback, that of the in-place patches, and the staging removal", said)
	}
	// Nothing to do: nothing said.
	rec = logtest.NewRecorder()
	if err := Cleanup(root, rec.Logger()); err != nil || len(rec.Messages()) != 0 {
		t.Errorf("second Cleanup: %v, said %q", err, rec.Messages())
	}
}

func TestStagingVerify(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, oldDatadir)
	st, man := stage(t, root)
	bad := append([]ManifestEntry(nil), man...)
	bad[0].Size++
	if err := st.Verify(bad, "10.0.0.1"); err == nil || !strings.Contains(err.Error(), "10.0.0.1") {
		t.Fatalf("size mismatch: %v", err)
	}
	bad = append([]ManifestEntry(nil), man...)
	bad[0].Sum = "00"
	if err := st.Verify(bad, "d"); err == nil || ExitCode(err) != int(EPROTO) {
		t.Fatalf("checksum mismatch: %v", err)
	}
	if err := st.Verify(append(man, ManifestEntry{Path: "missing", Size: 1}), "d"); err == nil {
		t.Fatal("missing file accepted")
	}
	if err := st.Verify(man[1:], "d"); err == nil {
		t.Fatal("file outside the manifest accepted")
	}
	// Truncated on disk although recorded complete.
	os.Truncate(filepath.Join(st.Dir, man[0].Path), 1)
	if err := st.Verify(man, "d"); err == nil {
		t.Fatal("truncated file accepted")
	}
}

// A database dropped on the donor goes from the delta's staging with its
// directory; an empty directory that was there before stays.
func TestPruneRemovesEmptiedDirs(t *testing.T) {
	st, err := NewStaging(t.TempDir(), nil, logtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"keep/t.ibd", "olddb/db.opt", "olddb/t.frm", "olddb/sub/x", "mixed/a", "mixed/b"} {
		p := filepath.Join(st.Dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(st.Dir, "wasempty"), 0o755); err != nil {
		t.Fatal(err)
	}
	removed, err := st.Prune(map[string]bool{"keep/t.ibd": true, "mixed/a": true})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 4 {
		t.Errorf("removed %v, want 4 files", removed)
	}
	for p, want := range map[string]bool{"olddb": false, "keep/t.ibd": true, "mixed/a": true, "mixed/b": false, "wasempty": true} {
		_, err := os.Lstat(filepath.Join(st.Dir, p))
		if got := err == nil; got != want {
			t.Errorf("%s exists: %v, want %v", p, got, want)
		}
	}
}

func TestCheckPath(t *testing.T) {
	for _, ok := range []string{"ibdata1", "bench/t.ibd", "a/b/c", "..foo"} {
		if err := CheckPath(ok); err != nil {
			t.Errorf("CheckPath(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", ".sst-native/x", ".sst-native-old", "a/", "x\x00y", `a\b`} {
		if err := CheckPath(bad); err == nil {
			t.Errorf("CheckPath(%q) accepted", bad)
		}
	}
	st, err := NewStaging(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create("../../escape", 0o600); err == nil {
		t.Fatal("Create outside staging accepted")
	}
}

func TestCheckSpace(t *testing.T) {
	st, err := NewStaging(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CheckSpace(1<<20, "d"); err != nil {
		t.Fatal(err)
	}
	err = st.CheckSpace(1<<62, "10.0.0.9:4444")
	if ExitCode(err) != int(ENOSPC) || !strings.Contains(err.Error(), "10.0.0.9") {
		t.Fatalf("CheckSpace(huge) = %v", err)
	}
}

func TestExcluded(t *testing.T) {
	for _, n := range []string{"grastate.dat", "gvwstate.dat", "galera.cache", "x.pem", "sst_in_progress", "node.err", "x.log", "h.pid", "tables_flushed", "sst_error", "wsrep_sst.pid", "lost+found", ".zfs", ".snapshot", ".sst-native", "galera-supervisor.decision", "galera-supervisor.sst-incomplete"} {
		if !Excluded(n) {
			t.Errorf("Excluded(%q) = false", n)
		}
	}
	for _, n := range []string{"ibdata1", "ib_logfile0", "undo001", "mysql", "aria_log.00000001", "mysql-bin.000001", "mysql-bin.index"} {
		if Excluded(n) {
			t.Errorf("Excluded(%q) = true", n)
		}
	}
}

// A joiner killed while it swaps two roots (the datadir and, say, a DATA
// DIRECTORY) leaves both half swapped: Cleanup of the first, the only one
// the next start knows, restores the other too.
func TestCleanupOtherRoots(t *testing.T) {
	data, ext := t.TempDir(), t.TempDir()
	writeFiles(t, data, oldDatadir)
	writeFiles(t, ext, map[string]string{"t.ibd": "old ext table", "stranger": "not ours"})
	beforeData, beforeExt := treeHash(t, data), treeHash(t, ext)
	st1, _ := stage(t, data)
	st2, err := NewStaging(ext, func(string) bool { return true }, logtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	f, _ := st2.Create("t.ibd", 0o640)
	f.WriteString("new ext table")
	f.Close()
	type killed struct{}
	st2.failpoint = func(step string) error {
		if step == "sync" {
			panic(killed{}) // dies mid-swap: no rollback runs
		}
		return nil
	}
	func() {
		defer func() {
			if r := recover(); r != (killed{}) {
				t.Fatalf("swap was not killed: %v", r)
			}
		}()
		Swap(st1, st2)
	}()
	if b, _ := os.ReadFile(filepath.Join(ext, "t.ibd")); string(b) != "new ext table" {
		t.Fatalf("the kill came too early: %q", b)
	}
	st1.unlock()
	st2.unlock()
	if err := Cleanup(data, logtest.New(t)); err != nil {
		t.Fatal(err)
	}
	if treeHash(t, data) != beforeData {
		t.Error("datadir not restored")
	}
	if treeHash(t, ext) != beforeExt {
		t.Error("the other root not restored")
	}
}

// On EXDEV the swap copies; the copy's steps are failpoints, so the failure
// and crash tests above go through each. Any other rename error is the
// swap's error, with the old datadir kept.
func TestStagingSwapEXDEVOnly(t *testing.T) {
	var steps []string
	root := t.TempDir()
	writeFiles(t, root, oldDatadir)
	st, _ := stage(t, root)
	st.rename = renames["exdev"]
	st.failpoint = func(step string) error { steps = append(steps, step); return nil }
	if err := Swap(st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"copy:mysql", "copy-done:mysql", "copy-remove:mysql", "copy:newdb", "copy-remove:olddb"} {
		if !slices.Contains(steps, want) {
			t.Errorf("no step %s in an EXDEV swap: %v", want, steps)
		}
	}

	root = t.TempDir()
	writeFiles(t, root, oldDatadir)
	before := treeHash(t, root)
	st, _ = stage(t, root)
	st.rename = func(oldpath, newpath string) error {
		if fi, err := os.Lstat(oldpath); err == nil && fi.IsDir() {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EACCES}
		}
		return os.Rename(oldpath, newpath)
	}
	err := Swap(st)
	if !errors.Is(err, syscall.EACCES) {
		t.Fatalf("Swap with renames failing EACCES: %v", err)
	}
	st.Abort()
	if after := treeHash(t, root); after != before {
		t.Fatal("old datadir changed after a failed swap")
	}
	if ents, _ := filepath.Glob(filepath.Join(root, CopyPrefix+"*")); len(ents) != 0 {
		t.Errorf("a copy was made for a rename that failed with EACCES: %v", ents)
	}
}

// A crash after a copying move renamed its copy into place, while it
// removed the source: recovery finishes the removal (MoveName says the
// destination is whole), then rolls the swap back as after a rename.
func TestRecoverInterruptedCopy(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, oldDatadir)
	before := treeHash(t, root)
	old := filepath.Join(root, OldDirName)
	if err := os.Mkdir(old, 0o750); err != nil {
		t.Fatal(err)
	}
	src, dst := filepath.Join(root, "mysql"), filepath.Join(old, "mysql")
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	if err := writeJournal(filepath.Join(root, MoveName), []string{src, dst}); err != nil {
		t.Fatal(err)
	}
	// Half removed, and a copy of another entry under way.
	if err := os.Remove(filepath.Join(src, "user.MAI")); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, old, map[string]string{CopyPrefix + "bench/t.ibd": "half"})
	if err := Recover(root, logtest.New(t)); err != nil {
		t.Fatal(err)
	}
	if after := treeHash(t, root); after != before {
		t.Fatal("old datadir not restored")
	}
	for _, n := range []string{OldDirName, MoveName} {
		if _, err := os.Lstat(filepath.Join(root, n)); err == nil {
			t.Errorf("%s left after recovery", n)
		}
	}
	// Without MoveName, an entry both in the root and aside is not ours
	// to choose between.
	if err := os.Mkdir(old, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	if err, e := Recover(root, logtest.New(t)), (*Error)(nil); !errors.As(err, &e) || e.Errno != EEXIST {
		t.Errorf("Recover with mysql in both places and no %s: %v", MoveName, err)
	}
}
