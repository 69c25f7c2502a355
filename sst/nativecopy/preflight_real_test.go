package nativecopy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
	"github.com/galera-supervisor/galera-supervisor/sst/nativebackup"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// TestRealPreflight: a joiner whose server could not use the donor's
// files is refused before any byte moves, by native-copy and by
// native-backup, with both values and what to do: another
// innodb_page_size (the donor's read from its ibdata1), another
// lower_case_table_names, an encryption key missing from its key file, a
// key that differs. Then, with the donor's settings and keys, the same
// joiner joins Synced with every table equal (encrypted ones included).
// (native-backup's donor of another major: TestRealNativeBackupPreflight.)
func TestRealPreflight(t *testing.T) {
	ctx := ctxFor(t, 6*time.Minute)
	c := newCluster(t, nil)
	n1, n2 := c.Node(1), c.Node(2)
	const key1, key2 = "1;a7addd9adea9978fda19f21e6be987880e68ac92632ca052e5bb42b1a506939a", "2;49c16acc2dffe616710c9ba9a10b94944a737de1beccb52dc1560abfdd67388b"
	keyFile := func(n *galeratest.Node, lines ...string) {
		p := filepath.Join(n.Dir, "keys.txt")
		testutil.Must(t, os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o640))
		mkdirsFor(t, n.Dir) // the key file's directory, and the file, readable by the server
		testutil.Must(t, os.Chown(p, 0, 0))
		os.Chmod(p, 0o644)
	}
	for _, n := range c.Nodes() {
		keyFile(n, key1, key2)
		testutil.Must(t, n.SetMysqld(map[string]string{
			"plugin_load_add":              "file_key_management",
			"file_key_management_filename": filepath.Join(n.Dir, "keys.txt"),
			"innodb_encrypt_tables":        "ON",
			"innodb_encrypt_log":           "ON",
		}))
	}
	testutil.Must(t, c.Bootstrap(ctx))
	execSQL(t, ctx, n1,
		"CREATE DATABASE pf",
		"USE pf",
		"CREATE TABLE pf.enc (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB ENCRYPTED=YES ENCRYPTION_KEY_ID=2",
		"INSERT INTO pf.enc SELECT seq, CONCAT('secret ', seq) FROM seq_1_to_2000",
	)
	sums1 := checksums(t, ctx, n1)

	refused := func(t *testing.T, wants ...string) {
		t.Helper()
		o1, o2 := logSize(n1), logSize(n2)
		t0 := time.Now()
		testutil.Must(t, n2.Start(ctx))
		refusedBy(t, ctx, n2, o2)
		jl, dl := logSince(t, n2, o2), logSince(t, n1, o1)
		errs := grepLines(jl, "WSREP_SST: [ERROR]")
		t.Logf("refused in %.1fs:\n%s\n%s", time.Since(t0).Seconds(), grepLines(jl, "preflight"), errs)
		for _, w := range wants {
			if !strings.Contains(errs, w) {
				t.Errorf("the joiner's error does not say %q", w)
			}
		}
		if !strings.Contains(jl, "donor_innodb_page_size=") {
			t.Errorf("the joiner logged no preflight:\n%s", grepLines(jl, "WSREP_SST"))
		}
		if strings.Contains(dl, "first pass") || strings.Contains(dl, "--backup") {
			t.Errorf("the donor sent data:\n%s", grepLines(dl, "WSREP_SST"))
		}
		if ents, _ := os.ReadDir(n2.DataDir); len(ents) > 0 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			for _, name := range names {
				if name == ".sst-native" || strings.HasSuffix(name, ".ibd") || name == "ibdata1" || name == "pf" {
					t.Errorf("node2's datadir got %s: %v", name, names)
				}
			}
		}
		testutil.Must(t, n1.WaitSynced(ctx))
	}
	for _, method := range []string{Name, nativebackup.Name} {
		testutil.Must(t, n2.SetMysqld(map[string]string{"wsrep_sst_method": method}))
		t.Run(method+"/page_size", func(t *testing.T) {
			testutil.Must(t, n2.SetMysqld(map[string]string{"innodb_page_size": "8k"}))
			defer n2.SetMysqld(map[string]string{"innodb_page_size": "-"})
			refused(t, "innodb_page_size: donor 16384 ("+filepath.Join(n1.DataDir, "ibdata1")+"), joiner 8192", "set innodb_page_size=16384")
		})
		t.Run(method+"/lower_case_table_names", func(t *testing.T) {
			testutil.Must(t, n2.SetMysqld(map[string]string{"lower_case_table_names": "1"}))
			defer n2.SetMysqld(map[string]string{"lower_case_table_names": "-"})
			refused(t, "lower_case_table_names: donor 0, joiner 1", "set lower_case_table_names=0")
		})
		t.Run(method+"/key_missing", func(t *testing.T) {
			keyFile(n2, key1)
			refused(t, "encryption key ID 2", "missing from the joiner's "+filepath.Join(n2.Dir, "keys.txt"))
		})
		t.Run(method+"/key_differs", func(t *testing.T) {
			keyFile(n2, key1, "2;"+strings.Repeat("0", 64))
			refused(t, "encryption key ID 2: differs")
		})
	}
	testutil.Must(t, n2.SetMysqld(map[string]string{"wsrep_sst_method": Name}))
	t.Run("match", func(t *testing.T) {
		keyFile(n2, key1, key2)
		join(t, ctx, n2)
		if err := galeratest.CompareChecksums(sums1, checksums(t, ctx, n2)); err != nil {
			t.Fatalf("node2's tables differ from node1's: %v", err)
		}
		if !strings.Contains(logSince(t, n2, 0), "file_key_management, 2 key IDs match") {
			t.Errorf("the joiner logged no preflight finding:\n%s", grepLines(logSince(t, n2, 0), "preflight"))
		}
	})
}

// refusedBy waits for n's SST to log its error, then for mariadbd to give
// up; one that hangs in its abort (10.11 does, at times) is killed after
// 10 s rather than waited for.
func refusedBy(t *testing.T, ctx context.Context, n *galeratest.Node, logOff int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(logSince(t, n, logOff), "WSREP_SST: [ERROR]") {
		if time.Now().After(deadline) {
			t.Fatalf("node%d's SST logged no error within 60s:\n%s", n.N, grepLines(logSince(t, n, logOff), "WSREP_SST"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := n.Wait(wctx); err != nil && n.Running() {
		testutil.Must(t, n.Kill())
	}
}
