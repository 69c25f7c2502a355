package sst

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
)

func TestArchiveFrom(t *testing.T) {
	a, err := ArchiveFrom(func(string) string { return "" })
	if err != nil || a != (Archive{Dir: "/tmp/sst_log_archive", Keep: 10, MaxAge: 30 * 24 * time.Hour}) {
		t.Errorf("defaults: %+v %v", a, err)
	}
	opts := map[string]string{"sst-log-archive": "off", "sst-log-archive-dir": "/var/log/sst/", "sst-log-archive-keep": "3", "sst-log-archive-max-age": "12h"}
	a, err = ArchiveFrom(func(n string) string { return opts[n] })
	if err != nil || a != (Archive{Off: true, Dir: "/var/log/sst", Keep: 3, MaxAge: 12 * time.Hour}) {
		t.Errorf("set: %+v %v", a, err)
	}
	for k, v := range map[string]string{"sst-log-archive": "maybe", "sst-log-archive-keep": "-1", "sst-log-archive-max-age": "soon"} {
		_, err := ArchiveFrom(func(n string) string {
			if n == k {
				return v
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), "[sst] "+k+"="+v) {
			t.Errorf("%s=%s: %v, want an error naming the option", k, v, err)
		}
	}
}

func TestArchiveRun(t *testing.T) {
	dd, arch := t.TempDir(), filepath.Join(t.TempDir(), "archive")
	names := []string{LogName("native-copy", Joiner), LogName("native-copy", Donor), "mariabackup.move.log"}
	os.WriteFile(filepath.Join(dd, names[0]), []byte("old joiner log"), 0o640)
	os.WriteFile(filepath.Join(dd, names[2]), []byte("stock move"), 0o640)
	now := time.Date(2026, 11, 21, 12, 0, 0, 5, time.Local)
	Archive{Dir: arch}.Run(dd, names, now, logtest.New(t))
	for n, want := range map[string]string{names[0]: "old joiner log", names[2]: "stock move"} {
		if _, err := os.Stat(filepath.Join(dd, n)); err == nil {
			t.Errorf("%s not archived", n)
		}
		if got := testutil.Gunzip(t, filepath.Join(arch, n+".2026.11.21-12.00.00.000000005.gz")); got != want {
			t.Errorf("archive of %s holds %q", n, got)
		}
	}
	// native-backup's mariadb-backup logs are archived under the stock
	// script's names too; the archive directory exists after the first
	// SST, with nothing to archive.
	fresh := filepath.Join(t.TempDir(), "fresh", "archive")
	Archive{Dir: fresh}.Run(dd, names, now, logtest.New(t))
	if st, err := os.Stat(fresh); err != nil || !st.IsDir() {
		t.Errorf("sst-log-archive-dir not created: %v", err)
	}
	os.WriteFile(filepath.Join(dd, "mariadb-backup.prepare.log"), []byte("prepare"), 0o640)
	Archive{Dir: arch}.Run(dd, []string{"mariadb-backup.prepare.log"}, now, logtest.New(t))
	for _, n := range []string{"mariadb-backup.prepare.log", "mariabackup.prepare.log"} {
		if got := testutil.Gunzip(t, filepath.Join(arch, n+".2026.11.21-12.00.00.000000005.gz")); got != "prepare" {
			t.Errorf("archive of %s holds %q", n, got)
		}
	}
	// Off: nothing moves.
	os.WriteFile(filepath.Join(dd, names[1]), []byte("donor"), 0o640)
	Archive{Off: true, Dir: arch}.Run(dd, names, now, logtest.New(t))
	if _, err := os.Stat(filepath.Join(dd, names[1])); err != nil {
		t.Errorf("sst-log-archive=0 moved the log: %v", err)
	}
	// An unusable archive directory: the log is kept beside itself.
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o640)
	Archive{Dir: filepath.Join(blocker, "sub")}.Run(dd, names, now, logtest.New(t))
	if b, err := os.ReadFile(filepath.Join(dd, names[1]+".2026.11.21-12.00.00.000000005")); err != nil || string(b) != "donor" {
		t.Errorf("local archive: %q %v", b, err)
	}
}

func TestArchiveInsideDatadir(t *testing.T) {
	dd := t.TempDir()
	rec := logtest.NewRecorder()
	Archive{Dir: filepath.Join(dd, "archive")}.Run(dd, nil, time.Now(), rec.Logger())
	if m := rec.Messages(); len(m) != 1 || !strings.Contains(m[0], "is inside the datadir") {
		t.Errorf("said %q", m)
	}
	if !inside("/var/lib/mysql", "/var/lib/mysql/") || inside("/var/lib/mysql", "/var/lib/mysql-archive") || inside("/var/lib/mysql", "/var/lib") {
		t.Error("inside")
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.Local)
	name := LogName("native-copy", Joiner)
	var all []string
	for i := range 6 {
		f := name + "." + now.Add(-time.Duration(i)*24*time.Hour).Format(archiveStamp) + ".gz"
		all = append(all, f)
		os.WriteFile(filepath.Join(dir, f), nil, 0o640)
	}
	others := []string{"mariabackup.move.log." + now.Format(archiveStamp) + ".gz", name + ".notastamp.gz", "notes.txt"}
	for _, f := range others {
		os.WriteFile(filepath.Join(dir, f), nil, 0o640)
	}
	// Keep 4: the two oldest go. Max age 2.5 days: days 3 and older go.
	removed, err := Prune(dir, []string{name}, 4, 0, now)
	wantGone := []string{filepath.Join(dir, all[4]), filepath.Join(dir, all[5])}
	slices.Sort(wantGone)
	if err != nil || !slices.Equal(removed, wantGone) {
		t.Errorf("keep 4: removed %q, %v", removed, err)
	}
	removed, err = Prune(dir, []string{name}, 0, 60*time.Hour, now)
	if err != nil || len(removed) != 1 || filepath.Base(removed[0]) != all[3] {
		t.Errorf("max age: removed %q, %v", removed, err)
	}
	ents, _ := os.ReadDir(dir)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	want := append(append([]string(nil), all[:3]...), others...)
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("left %q, want %q", left, want)
	}
	if r, err := Prune(filepath.Join(dir, "none"), []string{name}, 1, 0, now); err != nil || r != nil {
		t.Errorf("missing directory: %q %v", r, err)
	}
}

func TestSyslogTag(t *testing.T) {
	for _, tc := range []struct {
		sst, safe map[string]string
		env, want string
		bad       bool
	}{
		{want: ""},
		{sst: map[string]string{"sst-syslog": "1"}, want: "wsrep-sst-joiner"},
		{sst: map[string]string{"sst-syslog": "1"}, env: "node1", want: "node1-wsrep-sst-joiner"},
		{sst: map[string]string{"sst-syslog": "1"}, safe: map[string]string{"syslog-tag": "galera"}, want: "galera-wsrep-sst-joiner"},
		{safe: map[string]string{"syslog": ""}, want: "wsrep-sst-joiner"},
		{safe: map[string]string{"syslog": "0"}, want: ""},
		{sst: map[string]string{"sst-syslog": "-1"}, safe: map[string]string{"syslog": "1"}, want: ""},
		{sst: map[string]string{"sst-syslog": "2"}, bad: true},
	} {
		s := &Session{Args: &Args{Role: Joiner}, Options: MapOptions{"sst": tc.sst, "mysqld_safe": tc.safe}}
		got, err := s.syslogTag(func(string) string { return tc.env })
		if got != tc.want || (err != nil) != tc.bad {
			t.Errorf("%v %v %q: %q, %v; want %q", tc.sst, tc.safe, tc.env, got, err, tc.want)
		}
	}
}

func TestIsSessionLog(t *testing.T) {
	for name, want := range map[string]bool{
		"native-copy.joiner.log": true, "native-backup.donor.log": true,
		"native-copy.joiner.log.2026.12.02-15.20.45.278673446": true,
		"native-copy.joiner.log.old":                           false, "ib_logfile0": false, "mariadb-backup.move.log": false, "joiner.log.x": false,
	} {
		if IsSessionLog(name) != want {
			t.Errorf("IsSessionLog(%q) = %v", name, !want)
		}
	}
	keep, _ := NewKeepRule("/d", "nothing")
	if !keep("native-copy.joiner.log") || !Excluded("native-copy.donor.log") {
		t.Error("a joiner must keep its SST log and a donor never send its own")
	}
}

func TestToolLog(t *testing.T) {
	dd := t.TempDir()
	s := &Session{Datadir: dd, Options: MapOptions{}}
	l, err := s.OpenToolLog("mariadb-backup.prepare.log", "innobackupex-apply")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(l, "[00] starting\n[00] error: x\n")
	l.Close()
	if l.Where() != filepath.Join(dd, "mariadb-backup.prepare.log") || !slices.Contains(l.Lines(), "[00] error: x") {
		t.Errorf("file log %s: %q", l.Where(), l.Lines())
	}

	// With syslog: lines at daemon.err, tagged <syslog-tag>-<tag>, and no file.
	sock := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	prefix := "galera-"
	s = &Session{Datadir: dd, Options: MapOptions{"sst": {"sst-syslog-socket": sock}}, syslog: &prefix}
	l, err = s.OpenToolLog("mariadb-backup.move.log", "innobackupex-move")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(l, "moved a\nmoved ")
	io.WriteString(l, "b\nlast without newline")
	l.Close()
	if l.Where() != "syslog" || !slices.Equal(l.Lines(), []string{"moved a", "moved b", "last without newline"}) {
		t.Errorf("syslog log %s: %q", l.Where(), l.Lines())
	}
	buf := make([]byte, 1024)
	for _, want := range []string{"moved a", "moved b", "last without newline"} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil || !regexp.MustCompile(`^<27>.* galera-innobackupex-move\[\d+\]: `+want+`\n?$`).Match(buf[:n]) {
			t.Errorf("got %q (%v), want %q at daemon.err", buf[:n], err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dd, "mariadb-backup.move.log")); err == nil {
		t.Error("a file written with syslog")
	}
}
