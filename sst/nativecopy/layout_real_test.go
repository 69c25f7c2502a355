package nativecopy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
	"github.com/galera-supervisor/galera-supervisor/sst/nativebackup"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// startInView starts n's mariadbd in a mount namespace of its own in
// which each path of view (a directory the donor uses too) shows the
// directory view maps it to: two nodes on one machine then hold different
// files at the same path, as two machines do.
func startInView(t *testing.T, ctx context.Context, n *galeratest.Node, view map[string]string) {
	t.Helper()
	var script strings.Builder
	for path, src := range view {
		script.WriteString("mount --bind '" + src + "' '" + path + "' && ")
	}
	script.WriteString("exec /usr/bin/setpriv --reuid=" + galeratest.RunUser + " --regid=" + galeratest.RunUser + " --init-groups -- " +
		galeratest.Mariadbd + " --defaults-file=" + n.ConfigFile)
	testutil.Must(t, n.StartProgram(ctx, true, "/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script.String()))
}

// mkdirsFor creates dirs owned by the server's user.
func mkdirsFor(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		testutil.Must(t, os.MkdirAll(d, 0o750))
		if out, err := exec.Command("chown", galeratest.RunUser+":", d).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v: %s", d, err, out)
		}
	}
}

// mountTmpfs mounts a tmpfs of size at dir until the test ends.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	testutil.Must(t, os.MkdirAll(dir, 0o755))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "gs-test-tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs at %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

func execSQL(t *testing.T, ctx context.Context, n *galeratest.Node, qs ...string) {
	t.Helper()
	db, err := n.DB(ctx)
	testutil.Must(t, err)
	conn, err := db.Conn(ctx)
	testutil.Must(t, err)
	defer conn.Close()
	for _, q := range qs {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("node%d: %s: %v", n.N, q, err)
		}
	}
}

// TestRealLayout: every file of the node reaches where it belongs, by
// native-copy and by native-backup, on one cluster whose layout both
// share. The donor has an InnoDB table with DATA DIRECTORY, MyISAM and
// Aria tables with DATA/INDEX DIRECTORY, undo tablespaces and binlogs in
// directories of their own and its binlog index in yet another; the joiner
// sees that DATA DIRECTORY path on a filesystem of its own (a tmpfs, in a
// mount namespace) and keeps its InnoDB system tablespace in another
// innodb_data_home_dir. It joins Synced with every table's CHECKSUM TABLE
// equal, by native-copy, then with everything of its own removed, by
// native-backup; then, by each method, a DATA DIRECTORY path it cannot
// write refuses the SST before any byte moves, naming the table and the
// path, its old datadir intact.
func TestRealLayout(t *testing.T) {
	ctx := ctxFor(t, 10*time.Minute)
	c := newCluster(t, nil)
	n1, n2 := c.Node(1), c.Node(2)
	ext := filepath.Join(c.Dir(), "ext")         // DATA DIRECTORY, the same path on both nodes
	n2ext := filepath.Join(c.Dir(), "node2-ext") // what node2 sees there
	mountTmpfs(t, n2ext, "64m")
	mkdirsFor(t, ext, n2ext)
	var n2dirs []string // node2's directories outside its datadir
	for _, n := range c.Nodes() {
		undo, binlogs, index := filepath.Join(n.Dir, "undo"), filepath.Join(n.Dir, "binlogs"), filepath.Join(n.Dir, "binidx")
		mkdirsFor(t, undo, binlogs, index)
		testutil.Must(t, n.SetMysqld(map[string]string{
			"innodb_undo_tablespaces": "2",
			"innodb_undo_directory":   undo,
			"log_bin":                 filepath.Join(binlogs, "mysql-bin"),
			"log_bin_index":           filepath.Join(index, "mysql-bin.index"),
		}))
		n2dirs = []string{undo, binlogs, index}
	}
	ibdata2 := filepath.Join(n2.Dir, "ibdata")
	mkdirsFor(t, ibdata2)
	n2dirs = append(n2dirs, ibdata2, n2ext)
	testutil.Must(t, n2.SetMysqld(map[string]string{"innodb_data_home_dir": ibdata2}))
	testutil.Must(t, c.Bootstrap(ctx))
	execSQL(t, ctx, n1,
		"CREATE DATABASE lay",
		"USE lay",
		"CREATE TABLE lay.inno (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB DATA DIRECTORY='"+ext+"'",
		"INSERT INTO lay.inno SELECT seq, CONCAT('inno ', seq) FROM seq_1_to_5000",
		"CREATE TABLE lay.plain (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB",
		"INSERT INTO lay.plain SELECT seq, CONCAT('plain ', seq) FROM seq_1_to_1000",
		"CREATE TABLE lay.my (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=MyISAM DATA DIRECTORY='"+ext+"' INDEX DIRECTORY='"+ext+"'",
		"INSERT INTO lay.my SELECT seq, CONCAT('myisam ', seq) FROM seq_1_to_3000",
		"CREATE TABLE lay.ar (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=Aria DATA DIRECTORY='"+ext+"' INDEX DIRECTORY='"+ext+"'",
		"INSERT INTO lay.ar SELECT seq, CONCAT('aria ', seq) FROM seq_1_to_2000",
		"FLUSH TABLES",
	)
	view := map[string]string{ext: n2ext}
	// joinLaidOut joins node2; skip names the tables whose files its
	// method does not carry.
	joinLaidOut := func(t *testing.T, skip ...string) {
		sums1 := checksums(t, ctx, n1)
		for _, tbl := range skip {
			delete(sums1, tbl)
		}
		o2 := logSize(n2)
		t0 := time.Now()
		startInView(t, ctx, n2, view)
		if err := n2.WaitSynced(ctx); err != nil {
			t.Fatalf("node2 did not join: %v\n%s", err, grepLines(logSince(t, n2, 0), "WSREP_SST", "ERROR"))
		}
		t.Logf("node2 joined in %v", time.Since(t0).Round(time.Millisecond))
		sums2 := checksums(t, ctx, n2)
		for _, tbl := range skip {
			delete(sums2, tbl)
		}
		if err := galeratest.CompareChecksums(sums1, sums2); err != nil {
			lay, _ := os.ReadDir(filepath.Join(n2.DataDir, "lay"))
			var names []string
			for _, e := range lay {
				names = append(names, e.Name()+" "+e.Type().String())
			}
			t.Fatalf("node2's tables differ from node1's: %v\nnode2's %s: %v\n%s: %v\n%s", err, filepath.Join(n2.DataDir, "lay"), names, n2ext, listTree(t, n2ext),
				grepLines(logSince(t, n2, o2), "ERROR", "Warning", "lay"))
		}
		for _, tbl := range []string{"lay.inno", "lay.my", "lay.ar", "lay.plain"} {
			if _, ok := sums1[tbl]; !ok && !slices.Contains(skip, tbl) {
				t.Errorf("no checksum of %s: %v", tbl, sums1)
			}
		}
		// Where each file landed on node2.
		onDonor, onJoiner := listTree(t, ext), listTree(t, n2ext)
		want := 5 // inno.ibd, my.MYD, my.MYI, ar.MAD, ar.MAI
		if len(skip) > 0 {
			onDonor = slices.DeleteFunc(onDonor, func(f string) bool { return strings.HasPrefix(f, "ar.") })
			want = 3
		}
		if len(onDonor) != want || strings.Join(onDonor, "\n") != strings.Join(onJoiner, "\n") {
			t.Errorf("DATA DIRECTORY files: donor %v, joiner %v", onDonor, onJoiner)
		}
		for _, p := range []string{filepath.Join(ibdata2, "ibdata1"), filepath.Join(n2.Dir, "undo", "undo001"),
			filepath.Join(n2.Dir, "binidx", "mysql-bin.index"), filepath.Join(n2.DataDir, "lay", "inno.isl")} {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("node2: %v", err)
			}
		}
		for _, p := range []string{filepath.Join(n2.DataDir, "ibdata1"), filepath.Join(n2.DataDir, "lay", "inno.ibd"), filepath.Join(n2.DataDir, "undo001")} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("node2: %s should not exist", p)
			}
		}
		if idx, err := os.ReadFile(filepath.Join(n2.Dir, "binidx", "mysql-bin.index")); err != nil || !strings.Contains(string(idx), filepath.Join(n2.Dir, "binlogs", "mysql-bin.")) {
			t.Errorf("node2's binlog index: %q (%v)", idx, err)
		}
		links := []string{"my.MYD", "my.MYI", "ar.MAD", "ar.MAI"}
		if len(skip) > 0 {
			links = links[:2]
		}
		for _, l := range links {
			target, err := os.Readlink(filepath.Join(n2.DataDir, "lay", l))
			if err != nil || !strings.HasPrefix(target, ext+"/") {
				t.Errorf("node2: lay/%s: symlink to %q (%v)", l, target, err)
			}
		}
	}
	t.Run(Name, func(t *testing.T) { joinLaidOut(t) })
	t.Run(nativebackup.Name, func(t *testing.T) {
		// From nothing: every file must come by native-backup.
		if n2.Running() {
			testutil.Must(t, n2.Stop(ctx))
		}
		for _, d := range append(n2dirs, n2.DataDir) {
			emptyDir(t, d)
		}
		testutil.Must(t, n2.SetMysqld(map[string]string{"wsrep_sst_method": nativebackup.Name}))
		// mariadb-backup (10.11) leaves out Aria files behind a symlink, as
		// the stock mariabackup SST does: the joiner says so, naming the
		// table.
		o2 := logSize(n2)
		joinLaidOut(t, "lay.ar")
		if l := logSince(t, n2, o2); !regexp.MustCompile(`does not hold a table's file .* table=lay/ar path=` + regexp.QuoteMeta(ext+"/ar.MAD") + `\b`).MatchString(l) {
			t.Errorf("node2 did not warn of lay/ar:\n%s", grepLines(l, "WSREP_SST: [WARN"))
		}
	})
	for _, method := range []string{Name, nativebackup.Name} {
		t.Run("unwritable/"+method, func(t *testing.T) {
			// node2 sees a DATA DIRECTORY path it may not write.
			forceSST(t, ctx, n2)
			testutil.Must(t, n2.SetMysqld(map[string]string{"wsrep_sst_method": method}))
			ro := filepath.Join(c.Dir(), "node2-ro")
			testutil.Must(t, os.MkdirAll(ro, 0o755)) // root's
			before2 := dataSnapshot(t, n2.DataDir)
			sums1 := checksums(t, ctx, n1)
			o1, o2 := logSize(n1), logSize(n2)
			startInView(t, ctx, n2, map[string]string{ext: ro})
			refusedBy(t, ctx, n2, o2)
			jl, dl := logSince(t, n2, o2), logSince(t, n1, o1)
			errs := grepLines(jl, "WSREP_SST: [ERROR]")
			t.Logf("joiner:\n%s", errs)
			if !strings.Contains(errs, "table lay/") || !strings.Contains(errs, ext+"/") {
				t.Errorf("joiner's error names no table and path:\n%s", grepLines(jl, "WSREP_SST"))
			}
			if strings.Contains(dl, "first pass") || strings.Contains(dl, "--backup") {
				t.Errorf("the donor sent data:\n%s", grepLines(dl, "WSREP_SST"))
			}
			if d := diffSnap(before2, dataSnapshot(t, n2.DataDir)); d != "" {
				t.Errorf("node2's old datadir changed:\n%s", d)
			}
			if _, err := os.Lstat(filepath.Join(n2.DataDir, ".sst-native")); err == nil {
				t.Error("staging left behind")
			}
			if err := n1.WaitSynced(ctx); err != nil {
				t.Fatal(err)
			}
			if err := galeratest.CompareChecksums(sums1, checksums(t, ctx, n1)); err != nil {
				t.Fatalf("donor's data changed: %v", err)
			}
		})
	}
}

// emptyDir removes everything in dir, leaving dir.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	testutil.Must(t, err)
	for _, e := range ents {
		testutil.Must(t, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
}

// listTree lists the regular files under dir, relative, sorted, but the
// SST's work directories.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for rel := range snapshot(t, dir) {
		out = append(out, rel)
	}
	sort.Strings(out)
	return out
}
