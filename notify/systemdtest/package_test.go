package systemdtest

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nfpmEntry is one item of nfpm.yaml's contents: list.
type nfpmEntry struct{ src, dst, typ string }

// readNFPMContents reads the contents: list of packaging/nfpm.yaml with a
// line parser (the file's own simple layout; no YAML library is allowed).
func readNFPMContents(t *testing.T) ([]nfpmEntry, map[string]string) {
	t.Helper()
	f, err := os.Open("../../packaging/nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []nfpmEntry
	scripts := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			section = strings.TrimSuffix(strings.TrimSpace(line), ":")
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch section {
		case "contents":
			if after, isItem := strings.CutPrefix(k, "- "); isItem {
				out = append(out, nfpmEntry{})
				k = after
			}
			if len(out) == 0 {
				continue
			}
			e := &out[len(out)-1]
			switch k {
			case "src":
				e.src = v
			case "dst":
				e.dst = v
			case "type":
				e.typ = v
			}
		case "scripts":
			scripts[k] = v
		}
	}
	if len(out) == 0 {
		t.Fatal("packaging/nfpm.yaml: no contents")
	}
	return out, scripts
}

// TestSystemdPackage installs the files as the package lays them out
// (from packaging/nfpm.yaml), runs the maintainer scripts, has systemd
// verify the units, runs a node from the packaged unit, and checks that
// removal stops it.
func TestSystemdPackage(t *testing.T) {
	Require(t)
	bin := binaries(t)
	m := Boot(t, Config{Name: "gs-pkg", BindRO: []string{bin + ":/opt/galera-supervisor/bin"}})
	r := &rig{t: t, m: m}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	contents, scripts := readNFPMContents(t)
	for _, e := range contents {
		switch {
		case e.typ == "symlink":
			if err := os.Symlink(e.src, m.Path(e.dst)); err != nil {
				t.Fatal(err)
			}
		case e.typ == "dir":
			r.exec(ctx, "install", "-d", e.dst)
		case e.src == "./bin/galera-supervisor":
			// the built binary is bound in; the package copies it
			r.exec(ctx, "cp", "/opt/galera-supervisor/bin/galera-supervisor", e.dst)
		default:
			b, err := os.ReadFile(filepath.Join("../..", e.src))
			if err != nil {
				t.Fatalf("nfpm.yaml src %s: %v", e.src, err)
			}
			r.write(e.dst, string(b))
		}
	}
	for _, s := range []string{"postinstall", "preremove", "postremove"} {
		if scripts[s] == "" {
			t.Fatalf("nfpm.yaml has no %s script", s)
		}
		b, err := os.ReadFile(filepath.Join("../..", scripts[s]))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.WriteFile("/var/lib/gs-pkg/"+s, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.exec(ctx, "/var/lib/gs-pkg/postinstall", "configure")

	if out, err := m.Exec(ctx, "systemd-analyze", "verify", "--man=no",
		"/usr/lib/systemd/system/galera-supervisor.service", "galera-supervisor@n1.service"); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, l := range []string{"wsrep_sst_native-copy", "wsrep_sst_native-backup"} {
		if got := strings.TrimSpace(r.exec(ctx, "readlink", "-f", "/usr/bin/"+l)); got != "/usr/bin/galera-supervisor" {
			t.Errorf("/usr/bin/%s resolves to %q", l, got)
		}
	}
	if st := r.show(ctx, "galera-supervisor.service", "UnitFileState"); st != "disabled" {
		t.Errorf("galera-supervisor.service is %s after install; the package must not enable it", st)
	}

	// galera-supervisor.service on the standard option files, bootstrapped
	// by Debian's own galera_new_cluster (it writes the file the unit reads).
	r.write("/etc/mysql/mariadb.conf.d/60-galera.cnf", `[galera]
wsrep_on=ON
wsrep_provider=/usr/lib/galera/libgalera_smm.so
wsrep_cluster_address=gcomm://127.0.0.1
wsrep_node_address=127.0.0.1
wsrep_sst_method=native-copy
binlog_format=row
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
`)
	if out, err := m.Exec(ctx, "galera_new_cluster", "galera-supervisor.service"); err != nil {
		t.Fatalf("galera_new_cluster galera-supervisor.service: %v\n%s\n%s", err, out, m.Journal(ctx, "galera-supervisor.service"))
	}
	if out, code := r.supervisor(ctx, "status"); code != 0 || !strings.Contains(out, "galera-supervisor.service") ||
		!strings.Contains(out, "Synced, Primary, cluster size 1") {
		t.Errorf("status (default unit galera-supervisor.service): exit %d\n%s", code, out)
	}
	r.exec(ctx, "systemctl", "stop", "galera-supervisor.service")

	// A one-node cluster from the packaged template unit.
	n1 := newNode(1)
	r.write(n1.cnf, n1.config("gcomm://", nil))
	r.exec(ctx, "install", "-d", "-o", "mysql", "-g", "mysql", "-m", "0750", n1.datadir)
	r.exec(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+n1.datadir, "--user=mysql", "--skip-test-db", "--innodb-log-file-size=16M")
	if out, err := m.Systemctl(ctx, "start", n1.unit); err != nil {
		t.Fatalf("start %s: %v\n%s\n%s", n1.unit, err, out, m.Journal(ctx, n1.unit))
	}
	if out, code := r.supervisor(ctx, "status", "--unit", n1.unit); code != 0 {
		t.Errorf("status: exit %d\n%s", code, out)
	}

	r.exec(ctx, "/var/lib/gs-pkg/preremove", "upgrade")
	if st := r.show(ctx, n1.unit, "ActiveState"); st != "active" {
		t.Errorf("preremove upgrade stopped the node: %s", st)
	}
	r.exec(ctx, "/var/lib/gs-pkg/preremove", "remove")
	if st := r.show(ctx, n1.unit, "ActiveState"); st != "inactive" {
		t.Errorf("after preremove remove: %s is %s", n1.unit, st)
	}
	if p := r.unitProcs(ctx, n1.unit); len(p) > 0 {
		t.Errorf("processes left in %s: %v", n1.unit, p)
	}
	r.exec(ctx, "/var/lib/gs-pkg/postremove", "remove")
}

// TestSystemdMariadbDropIn puts the supervisor in charge of Debian's own
// mariadb.service with the shipped drop-in; "galera-supervisor bootstrap"
// and "status" find mariadb.service by themselves, since no
// galera-supervisor.service is installed.
func TestSystemdMariadbDropIn(t *testing.T) {
	Require(t)
	bin := binaries(t)
	m := Boot(t, Config{Name: "gs-dropin", BindRO: []string{bin + ":/opt/galera-supervisor/bin"}})
	r := &rig{t: t, m: m}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, l := range []string{"galera-supervisor", "wsrep_sst_native-copy"} {
		if err := os.Symlink("/opt/galera-supervisor/bin/galera-supervisor", m.Path("/usr/bin/"+l)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("../../units/mariadb.service.d/galera-supervisor.conf")
	if err != nil {
		t.Fatal(err)
	}
	r.write("/etc/systemd/system/mariadb.service.d/galera-supervisor.conf", string(b))
	r.write("/etc/mysql/mariadb.conf.d/60-galera.cnf", `[galera]
wsrep_on=ON
wsrep_provider=/usr/lib/galera/libgalera_smm.so
wsrep_cluster_address=gcomm://127.0.0.1
wsrep_node_address=127.0.0.1
wsrep_sst_method=native-copy
binlog_format=row
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
`)
	r.exec(ctx, "systemctl", "daemon-reload")

	// The stock datadir never ran Galera: no grastate.dat, which is safe.
	out, code := r.supervisor(ctx, "bootstrap")
	if code != 0 {
		t.Fatalf("bootstrap (default unit): exit %d\n%s\n%s", code, out, m.Journal(ctx, "mariadb.service"))
	}
	if !strings.Contains(out, "mariadb.service started as a new cluster") {
		t.Errorf("bootstrap output: %s", out)
	}
	main := r.show(ctx, "mariadb.service", "MainPID")
	if comm := strings.TrimSpace(r.exec(ctx, "cat", "/proc/"+main+"/comm")); comm != "galera-supervis" {
		t.Errorf("mariadb.service's main process is %q, want galera-supervisor", comm)
	}
	if _, err := os.Stat(m.Path("/run/mariadb-wsrep-new-cluster")); err == nil {
		t.Errorf("bootstrap left /run/mariadb-wsrep-new-cluster behind")
	}
	out, code = r.supervisor(ctx, "status")
	if code != 0 || !strings.Contains(out, "mariadb.service") || !strings.Contains(out, "Synced, Primary, cluster size 1") {
		t.Errorf("status (default unit): exit %d\n%s", code, out)
	}
	if out, err := m.Systemctl(ctx, "stop", "mariadb.service"); err != nil {
		t.Fatalf("stop: %v %s", err, out)
	}
	if p := r.unitProcs(ctx, "mariadb.service"); len(p) > 0 {
		t.Errorf("processes left in mariadb.service: %v", p)
	}
	out, code = r.supervisor(ctx, "status")
	if code != 3 {
		t.Errorf("status of a stopped unit: exit %d, want 3\n%s", code, out)
	}
}
