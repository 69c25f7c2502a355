package nativecopy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// TestRealOverlayDatadir: node2's datadir is an overlayfs mount whose old
// contents come from its lower layer, as a container's datadir from its
// image on a Docker host. There a directory of the lower layer cannot be
// renamed (EXDEV, with redirect_dir=off, the kernel's default), so the
// swap copies those entries aside; the joiner still ends Synced with the
// donor's data, and the lower layer is untouched.
func TestRealOverlayDatadir(t *testing.T) {
	ctx := ctxFor(t, 4*time.Minute)
	c := newCluster(t, nil)
	n1, n2 := c.Node(1), c.Node(2)
	testutil.Must(t, c.Bootstrap(ctx))
	testutil.Must(t, n1.CreateSampleTables(ctx))
	testutil.Must(t, n1.LoadData(ctx, 4<<20))

	layers := t.TempDir()
	lower, upper, work := filepath.Join(layers, "lower"), filepath.Join(layers, "upper"), filepath.Join(layers, "work")
	for _, d := range []string{lower, upper, work} {
		testutil.Must(t, os.Mkdir(d, 0o755))
	}
	mkfiles(t, lower, map[string]int{"ibdata1": 1 << 20, "mysql/user.MAI": 8192, "bench/t.ibd": 1 << 20, "olddb/t.ibd": 1 << 20})
	for _, d := range []string{lower, upper} {
		if out, err := exec.Command("chown", "-R", "mysql:mysql", d).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v: %s", d, err, out)
		}
	}
	testutil.Must(t, os.MkdirAll(n2.DataDir, 0o755))
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",redirect_dir=off"
	if out, err := exec.Command("mount", "-t", "overlay", "-o", opts, "gs-test-overlay", n2.DataDir).CombinedOutput(); err != nil {
		t.Skipf("mount overlay: %v: %s", err, out)
	}
	t.Cleanup(func() {
		n2.Kill()
		if out, err := exec.Command("umount", n2.DataDir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", n2.DataDir, err, out)
		}
	})
	// What makes this an overlay datadir: a lower directory does not
	// rename.
	if err := os.Rename(filepath.Join(n2.DataDir, "olddb"), filepath.Join(n2.DataDir, "olddb2")); err == nil || !strings.Contains(err.Error(), "cross-device") {
		t.Fatalf("rename of a lower-layer directory: %v, want EXDEV", err)
	}
	lowerBefore := snapshot(t, lower)

	o2 := logSize(n2)
	t0 := time.Now()
	join(t, ctx, n2)
	t.Logf("node2 Synced %.1fs after start", time.Since(t0).Seconds())
	jl := logSince(t, n2, o2)
	if !strings.Contains(jl, "rename across devices: copying instead") {
		t.Errorf("the joiner's swap did not copy a lower-layer directory:\n%s", grepLines(jl, "WSREP_SST"))
	}
	if err := galeratest.CompareChecksums(checksums(t, ctx, n1), checksums(t, ctx, n2)); err != nil {
		t.Fatal(err)
	}
	// A database only the old datadir had must not come back as an
	// empty one: mariadbd would list it.
	if _, err := os.Lstat(filepath.Join(n2.DataDir, "olddb")); err == nil {
		t.Error("olddb, only in the old datadir, survived the SST")
	}
	for _, n := range []string{sst.StagingDirName, sst.OldDirName, sst.TrashDirName, sst.JournalName, sst.MoveName} {
		if _, err := os.Lstat(filepath.Join(n2.DataDir, n)); err == nil {
			t.Errorf("%s left in the datadir", n)
		}
	}
	if d := diffSnap(lowerBefore, snapshot(t, lower)); d != "" {
		t.Errorf("the lower layer changed:\n%s", d)
	}
}
