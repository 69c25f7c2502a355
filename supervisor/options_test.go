package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// PrintDefaults reads the option files with my_print_defaults, the
// reference implementation: it returns the options of groups as a map.
// It is the oracle for LoadOptionFiles; nothing reads it at run time.
// Suffixed groups are included by my_print_defaults itself.
func PrintDefaults(ctx context.Context, bin string, d Defaults, groups ...string) (map[string]string, error) {
	if bin == "" {
		bin = "my_print_defaults"
	}
	args := append(d.Args(), groups...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	AddArgs(m, lines)
	return m, nil
}

// LoadPrintDefaults returns a loader that reads Options with my_print_defaults.
func LoadPrintDefaults(bin string, d Defaults) func(context.Context) (Options, error) {
	return func(ctx context.Context) (Options, error) {
		s, err := PrintDefaults(ctx, bin, d, "--mysqld")
		if err != nil {
			return Options{}, err
		}
		c, err := PrintDefaults(ctx, bin, d, ClientGroups...)
		if err != nil {
			return Options{}, err
		}
		gs, err := PrintDefaults(ctx, bin, d, "galera-supervisor")
		if err != nil {
			return Options{}, err
		}
		sst, err := PrintDefaults(ctx, bin, d, "sst")
		if err != nil {
			return Options{}, err
		}
		return Options{Server: s, Client: c, Supervisor: gs, SST: sst}, nil
	}
}
