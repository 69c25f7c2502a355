package supervisor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
)

// TestLoadOptionFilesMatchesPrintDefaults compares what the supervisor
// reads with my_print_defaults, the reference, on a file with the groups
// and spellings a node's config has.
func TestLoadOptionFilesMatchesPrintDefaults(t *testing.T) {
	if _, err := exec.LookPath("my_print_defaults"); err != nil {
		t.Skip("no my_print_defaults")
	}
	dir := t.TempDir()
	cnf := filepath.Join(dir, "my.cnf")
	os.WriteFile(cnf, []byte(`[client]
user = monitor
password = "s3cret # not a comment"
[mysqld]
datadir=/var/lib/one
socket = /run/mysqld/a.sock
wsrep_on = ON
loose-wsrep-provider=/usr/lib/galera/libgalera_smm.so
[galera]
datadir = /var/lib/two
[mysqld.node2]
socket=/run/mysqld/node2.sock
[galera-supervisor]
user=gs
`), 0o644)
	for _, suffix := range []string{"", ".node2"} {
		d := Defaults{File: cnf, GroupSuffix: suffix}
		got, err := LoadOptionFiles(d, logtest.New(t))(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want, err := LoadPrintDefaults("my_print_defaults", d)(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"datadir", "socket", "wsrep-on", "wsrep-provider"} {
			if got.Server[k] != want.Server[k] {
				t.Errorf("suffix %q: server %s = %q, my_print_defaults %q", suffix, k, got.Server[k], want.Server[k])
			}
		}
		for _, k := range []string{"user", "password"} {
			if got.Client[k] != want.Client[k] {
				t.Errorf("suffix %q: client %s = %q, my_print_defaults %q", suffix, k, got.Client[k], want.Client[k])
			}
		}
		if !got.Bool("wsrep_on", false) {
			t.Error("wsrep_on not on")
		}
	}
	o, _ := LoadOptionFiles(Defaults{File: cnf, GroupSuffix: ".node2"}, nil)(context.Background())
	if o.Server["socket"] != "/run/mysqld/node2.sock" || o.Server["datadir"] != "/var/lib/two" || o.Client["user"] != "gs" {
		t.Errorf("got %v / %v", o.Server, o.Client)
	}
	if _, err := LoadOptionFiles(Defaults{File: filepath.Join(dir, "none.cnf")}, nil)(context.Background()); err == nil {
		t.Error("no error for a missing --defaults-file")
	}
}
