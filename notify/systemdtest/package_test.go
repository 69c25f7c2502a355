package systemdtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests build the .deb and the .rpm with "make package" (nfpm, a Go
// tool of packaging/tools/go.mod) and check what they hold; the .deb is
// installed with dpkg in the container and runs a two-node cluster.

var pkgOnce struct {
	sync.Once
	deb, rpm string
	err      error
}

// packages runs "make package" once per test binary and returns the paths
// of the .deb and the .rpm it built in dist/.
func packages(t *testing.T) (deb, rpm string) {
	t.Helper()
	pkgOnce.Do(func() {
		cmd := exec.Command("make", "-C", "../..", "package")
		if out, err := cmd.CombinedOutput(); err != nil {
			pkgOnce.err = fmt.Errorf("make package: %v\n%s", err, out)
			return
		}
		for _, p := range []struct {
			glob string
			dst  *string
		}{{"../../dist/*.deb", &pkgOnce.deb}, {"../../dist/*.rpm", &pkgOnce.rpm}} {
			m, _ := filepath.Glob(p.glob)
			if len(m) != 1 {
				pkgOnce.err = fmt.Errorf("make package: %s matches %q, want one file", p.glob, m)
				return
			}
			*p.dst, _ = filepath.Abs(m[0])
		}
	})
	if pkgOnce.err != nil {
		t.Fatal(pkgOnce.err)
	}
	return pkgOnce.deb, pkgOnce.rpm
}

// nfpmEntry is one item of nfpm.yaml's contents: list; packager is "" for
// both packages, else "deb" or "rpm".
type nfpmEntry struct{ src, dst, typ, packager string }

// readNFPMContents reads the contents: list of packaging/nfpm.yaml with a
// line parser (the file's own simple layout; no YAML library is allowed).
func readNFPMContents(t *testing.T) []nfpmEntry {
	t.Helper()
	f, err := os.Open("../../packaging/nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []nfpmEntry
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
		if !ok || section != "contents" {
			continue
		}
		v = strings.TrimSpace(v)
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
		case "packager":
			e.packager = v
		}
	}
	if len(out) == 0 {
		t.Fatal("packaging/nfpm.yaml: no contents")
	}
	return out
}

// TestNFPMManPages: every man page of packaging/ has its own entry for the
// .rpm in nfpm.yaml (nfpm marks only files named one by one %doc), so a new
// command's page is not left out of the .rpm. It builds nothing: it runs
// under -short too.
func TestNFPMManPages(t *testing.T) {
	rpm := map[string]bool{}
	for _, e := range readNFPMContents(t) {
		if e.packager == "rpm" && e.typ == "doc" {
			rpm[e.dst] = true
		}
	}
	pages, _ := filepath.Glob("../../packaging/*.8")
	if len(pages) == 0 {
		t.Fatal("no packaging/*.8")
	}
	for _, p := range pages {
		if dst := "/usr/share/man/man8/" + filepath.Base(p) + ".gz"; !rpm[dst] {
			t.Errorf("packaging/nfpm.yaml: no .rpm entry (type: doc, packager: rpm) for %s", dst)
		}
	}
}

// wantContents is what nfpm.yaml says the packager's package holds, with
// globs expanded: path -> "l target" for a symlink, else "f".
func wantContents(t *testing.T, packager string) map[string]string {
	want := map[string]string{}
	for _, e := range readNFPMContents(t) {
		switch {
		case e.packager != "" && e.packager != packager:
		case e.typ == "symlink":
			want[e.dst] = "l " + e.src
		case e.typ == "dir":
		case strings.ContainsAny(e.src, "*?["):
			m, err := filepath.Glob(filepath.Join("../..", e.src))
			if err != nil || len(m) == 0 {
				t.Fatalf("nfpm.yaml src %s matches nothing: %v", e.src, err)
			}
			for _, f := range m {
				want[e.dst+filepath.Base(f)] = "f"
			}
		default:
			want[e.dst] = "f"
		}
	}
	return want
}

// listing maps each path of a package that is not a directory to "l
// target" or "f mode".
type listing map[string]string

func debListing(t *testing.T, deb string) listing {
	// -rw-r--r-- root/root 1502 2026-12-02 14:58 ./usr/lib/x [-> target]
	return packageListing(t, 5, "dpkg-deb", "-c", deb)
}

func rpmListing(t *testing.T, rpm string) listing {
	return packageListing(t, 1, "rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILENAMES} %{FILELINKTOS}\n]", rpm)
}

// packageListing runs a command that prints one line per entry: the mode
// first, the path in field pathField, a link's target last.
func packageListing(t *testing.T, pathField int, args ...string) listing {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).Output()
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	l := listing{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) <= pathField {
			t.Fatalf("%s: %q", strings.Join(args[:2], " "), line)
		}
		p := strings.TrimPrefix(f[pathField], ".")
		switch f[0][0] {
		case 'd':
		case 'l':
			l[p] = "l " + f[len(f)-1]
		default:
			l[p] = "f " + f[0]
		}
	}
	return l
}

func (l listing) String() string {
	var lines []string
	for p, v := range l {
		lines = append(lines, p+" "+v)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestSystemdPackageRPM checks the .rpm against nfpm.yaml and the .deb: the
// same files, links and modes; its dependencies, version and scriptlets.
func TestSystemdPackageRPM(t *testing.T) {
	Require(t)
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Fatalf("rpm (Debian package rpm, in the Makefile's DEB_PKGS) is needed to read the .rpm: %v", err)
	}
	deb, rpm := packages(t)
	debL, rpmL := debListing(t, deb), rpmListing(t, rpm)
	// Only the .deb has a Debian changelog (the .rpm's is in its header)
	// and lintian's overrides.
	for _, p := range []string{"/usr/share/doc/galera-supervisor/changelog.Debian.gz", "/usr/share/lintian/overrides/galera-supervisor"} {
		if _, ok := debL[p]; !ok {
			t.Errorf(".deb lacks %s", p)
		}
		delete(debL, p)
	}
	if debL.String() != rpmL.String() {
		t.Errorf("the .rpm and the .deb differ:\n.deb:\n%s\n.rpm:\n%s", debL, rpmL)
	}
	want := wantContents(t, "rpm")
	for p, kind := range want {
		got, ok := rpmL[p]
		switch {
		case !ok:
			t.Errorf(".rpm lacks %s", p)
		case kind == "f" && !strings.HasPrefix(got, "f -"):
			t.Errorf(".rpm: %s is %q, want a file", p, got)
		case kind != "f" && got != kind:
			t.Errorf(".rpm: %s is %q, want %q", p, got, kind)
		}
	}
	for p := range rpmL {
		if _, ok := want[p]; !ok {
			t.Errorf(".rpm holds %s, which nfpm.yaml does not name", p)
		}
	}
	// Whatever the repository has of units, man pages and catalog is shipped.
	for _, glob := range []string{"../../units/*.service", "../../packaging/*.8", "../../packaging/*.catalog"} {
		m, _ := filepath.Glob(glob)
		for _, f := range m {
			found := false
			for p := range rpmL {
				found = found || strings.TrimSuffix(filepath.Base(p), ".gz") == filepath.Base(f)
			}
			if !found {
				t.Errorf("%s is not in the packages", f)
			}
		}
	}
	for p, mode := range map[string]string{
		"/usr/bin/galera-supervisor":                         "f -rwxr-xr-x",
		"/usr/lib/systemd/system/galera-supervisor@.service": "f -rw-r--r--",
		"/usr/bin/wsrep_sst_native-copy":                     "l galera-supervisor",
		"/usr/bin/wsrep_sst_native-backup":                   "l galera-supervisor",
		"/usr/share/doc/galera-supervisor/copyright":         "f -rw-r--r--",
	} {
		if rpmL[p] != mode {
			t.Errorf(".rpm: %s is %q, want %q", p, rpmL[p], mode)
		}
	}

	q := func(args ...string) string {
		out, err := exec.Command("rpm", append([]string{"-qp"}, append(args, rpm)...)...).Output()
		if err != nil {
			t.Fatalf("rpm -qp %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	req := q("--requires")
	for _, dep := range []string{"mariadb-server", "(galera-4 or galera)"} {
		if !strings.Contains(req, dep+"\n") {
			t.Errorf(".rpm does not require %s:\n%s", dep, req)
		}
	}
	debVersion, err := exec.Command("dpkg-deb", "-f", deb, "Version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if v := q("--qf", "%{VERSION}-%{RELEASE}"); v != strings.TrimSpace(string(debVersion)) {
		t.Errorf(".rpm version %s, .deb version %s", v, debVersion)
	}
	for tag, want := range map[string]string{"%{LICENSE}": "Apache-2.0", "%{GROUP}": "Applications/Databases",
		"%{CHANGELOGNAME}": strings.TrimSpace(string(debMaintainer(t, deb))) + " - " + strings.TrimSpace(string(debVersion))} {
		if got := q("--qf", tag); got != want {
			t.Errorf(".rpm %s is %q, want %q", tag, got, want)
		}
	}
	scripts := q("--scripts")
	for _, s := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet",
		"journalctl --update-catalog", "systemctl daemon-reload", "systemctl stop galera-supervisor.service"} {
		if !strings.Contains(scripts, s) {
			t.Errorf(".rpm scriptlets lack %q:\n%s", s, scripts)
		}
	}
}

// TestSystemdPackageRPMScripts installs the .rpm with rpm -i --root into a
// scratch root (--nodeps: the root holds no MariaDB) whose systemctl and
// journalctl are fakes that log their arguments: the files are the .deb's,
// the scriptlets run what the .deb's maintainer scripts run, and rpm -e
// stops the nodes and removes the drop-in route's link.
func TestSystemdPackageRPMScripts(t *testing.T) {
	Require(t)
	deb, rpm := packages(t)
	root, log := scratchRoot(t)
	scaffold := walkListing(t, root)
	rpmRoot := func(args ...string) {
		t.Helper()
		out, err := exec.Command("rpm", append([]string{"--root", root, "--dbpath", "/var/lib/rpm", "--nodeps"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("rpm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	rpmRoot("-i", rpm)
	got := walkListing(t, root)
	for p := range scaffold {
		delete(got, p)
	}
	delete(got, "/fake.log")
	for p := range got {
		if strings.HasPrefix(p, "/var/lib/rpm/") {
			delete(got, p) // rpm's database (Debian's rpm keeps it in ~/.rpmdb unless told)
		}
	}
	want := debListing(t, deb)
	delete(want, "/usr/share/doc/galera-supervisor/changelog.Debian.gz")
	delete(want, "/usr/share/lintian/overrides/galera-supervisor")
	if got.String() != want.String() {
		t.Errorf("rpm -i --root installed other files than the .deb holds:\ninstalled:\n%s\n.deb:\n%s", got, want)
	}
	calls := func() string {
		b, _ := os.ReadFile(log)
		return string(b)
	}
	for _, c := range []string{"journalctl --update-catalog", "systemctl daemon-reload"} {
		if !strings.Contains(calls(), c+"\n") {
			t.Errorf("the .rpm's postinstall did not run %q:\n%s", c, calls())
		}
	}
	if strings.Contains(calls(), " stop ") || strings.Contains(calls(), " restart ") || strings.Contains(calls(), " enable ") {
		t.Errorf("the .rpm's install stopped, restarted or enabled a unit:\n%s", calls())
	}
	// An upgrade (here a reinstall of the same version) stops nothing.
	os.WriteFile(log, nil, 0o644)
	rpmRoot("-U", "--replacepkgs", rpm)
	if strings.Contains(calls(), " stop ") {
		t.Errorf("rpm -U stopped a unit:\n%s", calls())
	}

	// The drop-in route, as units/README.md enables it; rpm -e undoes it.
	link := filepath.Join(root, "etc/systemd/system/mariadb.service.d/galera-supervisor.conf")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/share/galera-supervisor/mariadb.service.d/galera-supervisor.conf", link); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(log, nil, 0o644)
	rpmRoot("-e", "galera-supervisor")
	if !strings.Contains(calls(), "systemctl stop galera-supervisor.service galera-supervisor@*.service\n") {
		t.Errorf("rpm -e did not stop the nodes:\n%s", calls())
	}
	if _, err := os.Lstat(link); err == nil {
		t.Errorf("rpm -e left the drop-in route's link")
	}
	left := walkListing(t, root)
	for p := range left {
		if _, ok := want[p]; ok && p != "/usr/bin/systemctl" {
			t.Errorf("rpm -e left %s", p)
		}
	}
}

// scratchRoot makes a root for rpm --root whose scriptlets can run: the
// host's dash as /bin/sh and the few tools the scripts call, with their
// libraries; fake systemctl and journalctl log to /fake.log, which it
// returns as a host path; /run/systemd/system says systemd runs.
func scratchRoot(t *testing.T) (root, log string) {
	t.Helper()
	root = t.TempDir()
	for _, d := range []string{"usr/bin", "usr/lib", "usr/lib64", "run/systemd/system", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The scripts send their tools' output to /dev/null.
	if err := syscall.Mknod(filepath.Join(root, "dev/null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Fatalf("mknod /dev/null: %v", err)
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		target := "usr/" + l
		if l == "sbin" {
			target = "usr/bin"
		}
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	copyFile := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dst), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range []string{"dash", "rm", "rmdir", "cat"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		dst := "/usr/bin/" + tool
		if tool == "dash" {
			dst = "/usr/bin/sh"
		}
		copyFile(path, dst)
		out, err := exec.Command("ldd", path).Output()
		if err != nil {
			t.Fatalf("ldd %s: %v", path, err)
		}
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, "/") {
				if err := os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755); err != nil {
					t.Fatal(err)
				}
				copyFile(f, f)
			}
		}
	}
	for _, fake := range []string{"systemctl", "journalctl"} {
		if err := os.WriteFile(filepath.Join(root, "usr/bin", fake), []byte("#!/bin/sh\necho \""+fake+" $*\" >>/fake.log\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root, filepath.Join(root, "fake.log")
}

// walkListing is the listing of the files and links under root, as paths
// of the root.
func walkListing(t *testing.T, root string) listing {
	t.Helper()
	l := listing{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(p, root)
		if d.Type()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			l[rel] = "l " + target
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		l[rel] = "f " + fi.Mode().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestSystemdPackageLint runs Debian's lintian on the .deb and rpmlint (the
// Debian package) on the .rpm that make package builds: no error and no
// warning, but for those packaging/lintian-overrides and
// packaging/rpmlint.toml name with their reasons, and no override unused.
func TestSystemdPackageLint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the packages: skipped under -short")
	}
	for _, tool := range []string{"lintian", "rpmlint"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("%s (the Debian package, in the Makefile's DEB_PKGS) not found: %v", tool, err)
			if os.Getenv("GS_TEST_REAL") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	deb, rpm := packages(t)
	// -I shows the informational tags too: an unused override is one.
	out, err := exec.Command("lintian", "-I", "--fail-on", "error,warning", "--tag-display-limit", "0", deb).CombinedOutput()
	t.Logf("lintian %s:\n%s", filepath.Base(deb), out)
	if err != nil {
		t.Errorf("lintian: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: ") || strings.Contains(l, "unused-override") || strings.Contains(l, "mismatched-override") {
			t.Errorf("lintian: %s", l)
		}
	}
	out, err = exec.Command("rpmlint", "-c", "../../packaging/rpmlint.toml", rpm).CombinedOutput()
	t.Logf("rpmlint %s:\n%s", filepath.Base(rpm), out)
	if err != nil {
		t.Errorf("rpmlint: %v", err)
	}
	if !strings.Contains(string(out), " 0 errors, 0 warnings") {
		t.Errorf("rpmlint reports errors or warnings")
	}
}

func debMaintainer(t *testing.T, deb string) []byte {
	out, err := exec.Command("dpkg-deb", "-f", deb, "Maintainer").Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pkgNode is one instance of the packaged galera-supervisor@.service, with
// its option groups [mysqld.<name>] in the standard option files.
type pkgNode struct {
	name                        string
	port, gport, iport, sstPort int
}

func (n pkgNode) unit() string    { return "galera-supervisor@" + n.name + ".service" }
func (n pkgNode) datadir() string { return "/var/lib/mysql-" + n.name }
func (n pkgNode) socket() string  { return "/run/mysqld/" + n.name + ".sock" }

func (n pkgNode) groups() string {
	return fmt.Sprintf(`
[mysqld.%[1]s]
datadir=%[2]s
socket=%[3]s
pid-file=/run/mysqld/%[1]s.pid
port=%[4]d
innodb_log_file_size=16M
wsrep_node_name=%[1]s
wsrep_node_incoming_address=127.0.0.1:%[4]d
wsrep_provider_options='base_port=%[5]d;gmcast.listen_addr=tcp://127.0.0.1:%[5]d;ist.recv_addr=127.0.0.1:%[6]d;gcache.size=64M'
wsrep_sst_receive_address=127.0.0.1:%[7]d

[client.%[1]s]
socket=%[3]s
`, n.name, n.datadir(), n.socket(), n.port, n.gport, n.iport, n.sstPort)
}

// TestSystemdPackage installs the .deb with dpkg into the container (Debian
// 12 with mariadb-server and galera-4), checks what its scripts did, runs
// galera-supervisor.service on the standard option files, then two
// instances of galera-supervisor@.service started with systemctl, the
// second joining by a native-copy SST; a reinstall leaves a running node
// alone, and removal stops it.
func TestSystemdPackage(t *testing.T) {
	Require(t)
	deb, _ := packages(t)
	mdebDir := t.TempDir()
	m := Boot(t, Config{Name: "gs-pkg", BindRO: []string{filepath.Dir(deb) + ":/opt/dist", mdebDir + ":/opt/mariadb-deb"}})
	r := &rig{t: t, m: m}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	debIn := "/opt/dist/" + filepath.Base(deb)
	mdebIn := "/opt/mariadb-deb/" + downloadMariadbServer(ctx, t, m, mdebDir)

	r.exec(ctx, "dpkg", "-i", debIn)
	if out, err := m.Exec(ctx, "systemd-analyze", "verify", "--man=no",
		"/usr/lib/systemd/system/galera-supervisor.service", "galera-supervisor@n1.service"); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, l := range []string{"wsrep_sst_native-copy", "wsrep_sst_native-backup"} {
		if got := strings.TrimSpace(r.exec(ctx, "readlink", "-f", "/usr/bin/"+l)); got != "/usr/bin/galera-supervisor" {
			t.Errorf("/usr/bin/%s resolves to %q", l, got)
		}
	}
	for _, u := range []string{"galera-supervisor.service", "galera-supervisor@.service"} {
		if st, _ := m.Systemctl(ctx, "is-enabled", u); strings.TrimSpace(st) != "disabled" {
			t.Errorf("%s is %q after install; the package must not enable it", u, st)
		}
	}
	// postinstall ran journalctl --update-catalog: the SST texts are known.
	const sstStarted = "a19d96317dc44d4e811da4a2d5b03ff6"
	if out := r.exec(ctx, "journalctl", "--list-catalog", sstStarted); !strings.Contains(out, "galera-supervisor") {
		t.Errorf("journalctl --list-catalog %s after install:\n%s", sstStarted, out)
	}
	if out := r.exec(ctx, "bash", "-c", ". /usr/share/bash-completion/completions/galera-supervisor && "+
		"COMP_WORDS=(galera-supervisor boo) COMP_CWORD=1 && _galera_supervisor && echo ${COMPREPLY[@]}"); strings.TrimSpace(out) != "bootstrap" {
		t.Errorf("packaged bash completion of \"galera-supervisor boo\": %q", out)
	}
	version := strings.TrimSpace(r.exec(ctx, "dpkg-query", "-W", "-f=${Version}", "galera-supervisor"))
	if out := r.exec(ctx, "galera-supervisor", "version"); !strings.Contains(out, strings.TrimSuffix(version, "-1")) {
		t.Errorf("galera-supervisor version: %q, package version %s", out, version)
	}

	common := `[galera]
wsrep_on=ON
wsrep_provider=/usr/lib/galera/libgalera_smm.so
wsrep_node_address=127.0.0.1
wsrep_sst_method=native-copy
binlog_format=row
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
`
	r.run(t, "galera-supervisor.service", func(t *testing.T) {
		// On the standard option files, bootstrapped by Debian's own
		// galera_new_cluster (it writes the file the unit reads).
		r.write("/etc/mysql/mariadb.conf.d/60-galera.cnf", common+"wsrep_cluster_address=gcomm://127.0.0.1\n")
		if out, err := m.Exec(ctx, "galera_new_cluster", "galera-supervisor.service"); err != nil {
			t.Fatalf("galera_new_cluster galera-supervisor.service: %v\n%s\n%s", err, out, m.Journal(ctx, "galera-supervisor.service"))
		}
		if out, code := r.supervisor(ctx, "status"); code != 0 || !strings.Contains(out, "galera-supervisor.service") ||
			!strings.Contains(out, "Synced, Primary, cluster size 1") {
			t.Errorf("status (default unit galera-supervisor.service): exit %d\n%s", code, out)
		}
		// An operator who forgot to disable mariadb.service: an upgrade of
		// mariadb-server restarts it (postinst), a manual start is tried.
		// The guard skips both and the supervised node runs on.
		main := r.show(ctx, "galera-supervisor.service", "MainPID")
		r.exec(ctx, "systemctl", "enable", "mariadb.service")
		if out, err := m.Exec(ctx, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "--reinstall", "install", "-y", "-q", mdebIn); err != nil {
			t.Errorf("apt-get --reinstall install mariadb-server: %v\n%s", err, out)
		}
		m.Exec(ctx, "systemctl", "start", "mariadb.service")
		if st, pid := r.show(ctx, "galera-supervisor.service", "ActiveState"), r.show(ctx, "galera-supervisor.service", "MainPID"); st != "active" || pid != main {
			t.Errorf("after a reinstall of mariadb-server and a start of mariadb.service: galera-supervisor.service is %s, main PID %s (was %s)\n%s",
				st, pid, main, m.Journal(ctx, "mariadb.service"))
		}
		if st := r.show(ctx, "mariadb.service", "ActiveState"); st != "inactive" {
			t.Errorf("mariadb.service is %s beside the supervised node", st)
		}
		if j := m.Journal(ctx, "mariadb.service"); !strings.Contains(j, "galera-supervisor.service is running this datadir") {
			t.Errorf("the journal of mariadb.service does not say why it did not start:\n%s", j)
		}
		r.exec(ctx, "systemctl", "disable", "mariadb.service")
		r.exec(ctx, "systemctl", "stop", "galera-supervisor.service")
		if p := r.unitProcs(ctx, "galera-supervisor.service"); len(p) > 0 {
			t.Errorf("processes left in galera-supervisor.service: %v", p)
		}
	})
	if t.Failed() {
		return
	}

	// Two instances on the standard option files, each with its own groups.
	n1 := pkgNode{name: "node1", port: 3311, gport: 4567, iport: 4568, sstPort: 4444}
	n2 := pkgNode{name: "node2", port: 3312, gport: 4577, iport: 4578, sstPort: 4454}
	r.exec(ctx, "rm", "/etc/mysql/mariadb.conf.d/60-galera.cnf")
	r.write("/etc/mysql/mariadb.conf.d/70-galera-nodes.cnf", common+fmt.Sprintf(
		"wsrep_cluster_name=gs-pkg\nwsrep_cluster_address=gcomm://127.0.0.1:%d,127.0.0.1:%d\n", n1.gport, n2.gport)+n1.groups()+n2.groups())
	for _, n := range []pkgNode{n1, n2} {
		r.exec(ctx, "install", "-d", "-o", "mysql", "-g", "mysql", "-m", "0750", n.datadir())
	}
	r.exec(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+n1.datadir(), "--user=mysql",
		"--skip-test-db", "--innodb-log-file-size=16M")

	r.run(t, "bootstrap-node1", func(t *testing.T) {
		// What galera_new_cluster does, for the instance's own file.
		r.write("/run/galera-supervisor-wsrep-new-cluster."+n1.name, "_WSREP_NEW_CLUSTER='--wsrep-new-cluster'\n")
		out, err := m.Systemctl(ctx, "start", n1.unit())
		r.exec(ctx, "rm", "/run/galera-supervisor-wsrep-new-cluster."+n1.name)
		if err != nil {
			t.Fatalf("systemctl start %s: %v\n%s\n%s", n1.unit(), err, out, m.Journal(ctx, n1.unit()))
		}
		// status finds the instance's socket through --defaults-group-suffix.
		if out, code := r.supervisor(ctx, "status", "--unit", n1.unit()); code != 0 ||
			!strings.Contains(out, "Synced, Primary, cluster size 1") || !strings.Contains(out, n1.datadir()) {
			t.Errorf("status --unit %s: exit %d\n%s", n1.unit(), code, out)
		}
		r.exec(ctx, "mariadb", "-S", n1.socket(), "-e",
			"CREATE DATABASE pkg; CREATE TABLE pkg.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO pkg.t VALUES (1, 'before SST')")
	})
	if t.Failed() {
		return
	}

	r.run(t, "join-node2-by-native-copy", func(t *testing.T) {
		if out, err := m.Systemctl(ctx, "start", n2.unit()); err != nil {
			t.Fatalf("systemctl start %s: %v\n%s\n%s", n2.unit(), err, out, m.Journal(ctx, n2.unit()))
		}
		for _, n := range []pkgNode{n1, n2} {
			if out, err := m.Systemctl(ctx, "is-active", n.unit()); err != nil || strings.TrimSpace(out) != "active" {
				t.Errorf("systemctl is-active %s: %q %v", n.unit(), out, err)
			}
		}
		j := r.journal(ctx, n2.unit())
		if l, ok := firstLine(j, "SST phase sst_role=joiner sst_method=native-copy sst_phase=done"); !ok {
			t.Errorf("no finished native-copy joiner SST in the journal of %s\n%s", n2.unit(), m.Journal(ctx, n2.unit()))
		} else {
			t.Logf("%s: %s", n2.unit(), l.msg)
		}
		if _, ok := firstLine(j, "joined -> synced"); !ok {
			t.Errorf("%s never said Synced", n2.unit())
		}
		out, code := r.supervisor(ctx, "status", "--unit", n2.unit())
		if code != 0 || !strings.Contains(out, "Synced, Primary, cluster size 2") || !strings.Contains(out, "native-copy") {
			t.Errorf("status --unit %s: exit %d\n%s", n2.unit(), code, out)
		}
		t.Logf("galera-supervisor status --unit %s:\n%s", n2.unit(), out)
		if got := strings.TrimSpace(r.exec(ctx, "mariadb", "-S", n2.socket(), "-N", "-e", "SELECT v FROM pkg.t WHERE id = 1")); got != "before SST" {
			t.Errorf("node2 reads %q from the row node1 wrote before the SST", got)
		}
		// The packaged completion asks the real systemctl for node units.
		out = r.exec(ctx, "bash", "-c", ". /usr/share/bash-completion/completions/galera-supervisor && "+
			"COMP_WORDS=(galera-supervisor status --unit galera-supervisor@) COMP_CWORD=3 && _galera_supervisor && echo ${COMPREPLY[@]}")
		if got := strings.Fields(out); strings.Join(got, " ") != n1.unit()+" "+n2.unit() {
			t.Errorf("completion of \"status --unit galera-supervisor@\": %q, want %s and %s", got, n1.unit(), n2.unit())
		}
	})

	r.run(t, "stop-node2", func(t *testing.T) {
		r.exec(ctx, "systemctl", "stop", n2.unit())
		if st, res := r.show(ctx, n2.unit(), "ActiveState"), r.show(ctx, n2.unit(), "Result"); st != "inactive" || res != "success" {
			t.Errorf("after stop: %s is %s, result %s", n2.unit(), st, res)
		}
		if p := r.unitProcs(ctx, n2.unit()); len(p) > 0 {
			t.Errorf("processes left in %s: %v", n2.unit(), p)
		}
	})

	r.run(t, "reinstall-and-remove", func(t *testing.T) {
		main := r.show(ctx, n1.unit(), "MainPID")
		r.exec(ctx, "dpkg", "-i", debIn) // prerm upgrade: running nodes stay
		if st, pid := r.show(ctx, n1.unit(), "ActiveState"), r.show(ctx, n1.unit(), "MainPID"); st != "active" || pid != main {
			t.Errorf("reinstall touched %s: %s, main PID %s (was %s)", n1.unit(), st, pid, main)
		}
		r.exec(ctx, "dpkg", "-r", "galera-supervisor") // prerm remove stops them
		if st := r.show(ctx, n1.unit(), "ActiveState"); st != "inactive" {
			t.Errorf("after dpkg -r: %s is %s", n1.unit(), st)
		}
		if p := r.unitProcs(ctx, n1.unit()); len(p) > 0 {
			t.Errorf("processes left in %s after dpkg -r: %v", n1.unit(), p)
		}
		for _, l := range strings.Split(r.exec(ctx, "ps", "-e", "-o", "pid=,comm="), "\n") {
			if f := strings.Fields(l); len(f) == 2 && (f[1] == "mariadbd" || strings.HasPrefix(f[1], "galera-supervis")) {
				t.Errorf("left running after dpkg -r: %s", l)
			}
		}
		for _, p := range []string{"/usr/bin/galera-supervisor", "/usr/bin/wsrep_sst_native-copy",
			"/usr/lib/systemd/system/galera-supervisor@.service", "/usr/lib/systemd/catalog/galera-supervisor.catalog"} {
			if _, err := os.Lstat(m.Path(p)); err == nil {
				t.Errorf("%s is still there after dpkg -r", p)
			}
		}
		// postremove updated the catalog and reloaded the manager.
		if out, _ := m.Exec(ctx, "journalctl", "--list-catalog", sstStarted); strings.Contains(out, "galera-supervisor") {
			t.Errorf("catalog entry %s still known after dpkg -r:\n%s", sstStarted, out)
		}
		if st := r.show(ctx, "galera-supervisor.service", "LoadState"); st != "not-found" {
			t.Errorf("galera-supervisor.service is %s after dpkg -r, want not-found", st)
		}
	})
	if t.Failed() {
		return
	}

	r.run(t, "drop-in-route-and-remove", func(t *testing.T) {
		r.exec(ctx, "dpkg", "-i", debIn)
		for _, n := range []pkgNode{n1, n2} {
			r.exec(ctx, "rm", "-rf", n.datadir())
		}
		r.exec(ctx, "rm", "/etc/mysql/mariadb.conf.d/70-galera-nodes.cnf")
		r.write("/etc/mysql/mariadb.conf.d/60-galera.cnf", common+"wsrep_cluster_address=gcomm://127.0.0.1\n")
		// The one command units/README.md gives.
		enable := docCommand(t, "../../units/README.md", "ln -s /usr/share/galera-supervisor/mariadb.service.d/")
		r.exec(ctx, "sh", "-ec", enable)
		// bootstrap and status find mariadb.service though the package
		// installed galera-supervisor.service: the route is the enabled
		// unit that runs the supervisor, the node the one whose main
		// process is its parent.
		r.exec(ctx, "systemctl", "enable", "mariadb.service")
		if out, code := r.supervisor(ctx, "bootstrap"); code != 0 || !strings.Contains(out, "mariadb.service started as a new cluster") {
			t.Fatalf("bootstrap (default unit) on the drop-in route: exit %d\n%s\n%s", code, out, m.Journal(ctx, "mariadb.service"))
		}
		if out, code := r.supervisor(ctx, "status"); code != 0 || !strings.Contains(out, "mariadb.service") || strings.Contains(out, "galera-supervisor.service") {
			t.Errorf("status (default unit) on the drop-in route: exit %d\n%s", code, out)
		}
		r.exec(ctx, "systemctl", "disable", "mariadb.service")
		if out, code := r.supervisor(ctx, "status"); code != 0 || !strings.Contains(out, "mariadb.service") {
			t.Errorf("status (default unit) of the running mariadb.service, disabled: exit %d\n%s", code, out)
		}
		pid := r.show(ctx, "mariadb.service", "MainPID")
		if comm := strings.TrimSpace(r.exec(ctx, "cat", "/proc/"+pid+"/comm")); comm != "galera-supervis" {
			t.Fatalf("mariadb.service's main process is %q after %s", comm, enable)
		}
		// The other way round: galera-supervisor.service stands aside.
		m.Exec(ctx, "systemctl", "start", "galera-supervisor.service")
		if st, p := r.show(ctx, "mariadb.service", "ActiveState"), r.show(ctx, "mariadb.service", "MainPID"); st != "active" || p != pid {
			t.Errorf("a start of galera-supervisor.service touched mariadb.service: %s, main PID %s (was %s)", st, p, pid)
		}
		if st := r.show(ctx, "galera-supervisor.service", "ActiveState"); st != "inactive" {
			t.Errorf("galera-supervisor.service is %s beside mariadb.service", st)
		}
		out, err := m.Exec(ctx, "dpkg", "-r", "galera-supervisor")
		if err != nil {
			t.Fatalf("dpkg -r: %v\n%s", err, out)
		}
		if !strings.Contains(out, "runs on under galera-supervisor until it is restarted") {
			t.Errorf("dpkg -r did not warn that mariadb.service runs on:\n%s", out)
		}
		if _, err := os.Lstat(m.Path("/etc/systemd/system/mariadb.service.d/galera-supervisor.conf")); err == nil {
			t.Errorf("the drop-in link is still there after dpkg -r")
		}
		if st := r.show(ctx, "mariadb.service", "ActiveState"); st != "active" {
			t.Errorf("dpkg -r left mariadb.service %s; it runs on until restarted", st)
		}
		r.exec(ctx, "systemctl", "stop", "mariadb.service")
		// Stock again: galera_recovery and mariadbd, bootstrapped by
		// Debian's galera_new_cluster from the clean shutdown.
		if out, err := m.Exec(ctx, "galera_new_cluster"); err != nil {
			t.Fatalf("galera_new_cluster after dpkg -r: %v\n%s\n%s", err, out, m.Journal(ctx, "mariadb.service"))
		}
		pid = r.show(ctx, "mariadb.service", "MainPID")
		if comm := strings.TrimSpace(r.exec(ctx, "cat", "/proc/"+pid+"/comm")); comm != "mariadbd" {
			t.Errorf("mariadb.service's main process after dpkg -r is %q, want the stock mariadbd", comm)
		}
		if got := strings.TrimSpace(r.exec(ctx, "mariadb", "-N", "-e", "SHOW STATUS LIKE 'wsrep_local_state_comment'")); !strings.HasSuffix(got, "Synced") {
			t.Errorf("stock mariadb.service after dpkg -r: %q", got)
		}
		r.exec(ctx, "systemctl", "stop", "mariadb.service")
	})
}

// docCommand returns the one indented (code) line of the Markdown file doc
// that contains substr: a test runs what the documentation tells an
// operator, so the two cannot drift.
func docCommand(t *testing.T, doc, substr string) string {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "    ") && strings.Contains(l, substr) {
			found = append(found, strings.TrimSpace(l))
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d code lines contain %q, want one: %q", doc, len(found), substr, found)
	}
	return found[0]
}

// downloadMariadbServer fetches the .deb of the mariadb-server version
// installed in m into dir, with the host's apt (the container has no
// network), and returns its file name.
func downloadMariadbServer(ctx context.Context, t *testing.T, m *Machine, dir string) string {
	t.Helper()
	v, err := m.Exec(ctx, "dpkg-query", "-W", "-f=${Version}", "mariadb-server")
	if err != nil {
		t.Fatalf("dpkg-query mariadb-server: %v", err)
	}
	// The cached rootfs may be older than the mirror, which keeps only the
	// current version: then the reinstall is an upgrade, the case it stands
	// for anyway.
	var out []byte
	for _, pkg := range []string{"mariadb-server=" + strings.TrimSpace(v), "mariadb-server"} {
		cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", pkg)
		cmd.Dir = dir
		if out, err = cmd.CombinedOutput(); err == nil {
			break
		}
		t.Logf("apt-get download %s: %v\n%s", pkg, err, out)
	}
	if err != nil {
		t.Fatalf("apt-get download mariadb-server (the host's apt; the container has no network): %v\n%s", err, out)
	}
	m2, _ := filepath.Glob(filepath.Join(dir, "mariadb-server_*.deb"))
	if len(m2) != 1 {
		t.Fatalf("apt-get download mariadb-server: %q", m2)
	}
	return filepath.Base(m2[0])
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
