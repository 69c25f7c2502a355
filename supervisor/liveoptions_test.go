package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
	"github.com/galera-supervisor/galera-supervisor/schema"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
	"github.com/galera-supervisor/galera-supervisor/sst"
)

// sstProbe is an SST method that only reports the options it was given.
type sstProbe struct{}

var probeSeen = make(chan sst.Options, 1)

func (sstProbe) Joiner(ctx context.Context, s *sst.Session) error { return nil }
func (sstProbe) Donor(ctx context.Context, s *sst.Session) error {
	probeSeen <- s.Options
	return nil
}

func init() { sst.Register("watch-probe", sstProbe{}) }

// logLines collects the supervisor's log.
type logLines struct{ rec *logtest.Recorder }

func (l *logLines) mark() int { return len(l.rec.Records()) }

// waitFor waits until a record from index from on reads (as the text
// handler writes it) with want, for at most within from start.
func (l *logLines) waitFor(from int, want string, start time.Time, within time.Duration) (logtest.Record, time.Duration, error) {
	for {
		for _, r := range l.rec.Records()[from:] {
			if strings.Contains(r.Line, want) {
				return r, time.Since(start), nil
			}
		}
		if time.Since(start) > within {
			return logtest.Record{}, 0, fmt.Errorf("no log line with %q within %v; logged: %q", want, within, l.rec.Lines()[from:])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nextSSTLine is what the supervisor logs for an [sst] edit.
func nextSSTLine(option, was, now, file string, line int) string {
	return fmt.Sprintf("option files: changed, the next SST uses it option=%s old=%s new=%s option_group=sst option_file=%s option_line=%d applies=next-sst",
		option, was, now, file, line)
}

// nextSST runs an SST as mariadbd would, in the environment the fake
// mariadbd was given, and returns the options it saw.
func nextSST(t *testing.T, dir, cnf string) sst.Options {
	t.Helper()
	env, err := os.ReadFile(filepath.Join(dir, "options-env"))
	if err != nil || len(env) == 0 {
		t.Fatalf("mariadbd's environment has no %s: %q %v", schema.EnvOptions, env, err)
	}
	var stderr bytes.Buffer
	err = sst.Run(context.Background(), "watch-probe",
		[]string{"--role", "donor", "--address", "127.0.0.1:1/x", "--datadir", filepath.Join(dir, "data"), "--defaults-file", cnf},
		sst.Config{Stderr: &stderr, Getenv: func(k string) string {
			if k == schema.EnvOptions {
				return string(env)
			}
			return ""
		}})
	if err != nil {
		t.Fatalf("SST: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "options: the supervisor's last good option files") {
		t.Errorf("the SST did not read the snapshot:\n%s", stderr.String())
	}
	return <-probeSeen
}

// TestLiveOptionFiles edits a supervised node's option files while its
// mariadbd runs, in the five ways the issue names: each edit is seen
// within 1 s, logged with file:line, and the next SST uses the new [sst]
// values; a broken edit keeps the last good ones; a server group change
// is logged as needing a restart, and nothing restarts.
func TestLiveOptionFiles(t *testing.T) {
	etc := t.TempDir()
	confd := filepath.Join(etc, "conf.d")
	targets := filepath.Join(etc, "targets")
	for _, d := range []string{confd, targets} {
		testutil.Must(t, os.Mkdir(d, 0o755))
	}
	cnf := filepath.Join(etc, "my.cnf")
	sstCnf := filepath.Join(confd, "sst.cnf")
	link := filepath.Join(confd, "link.cnf")
	write := func(p, s string) { t.Helper(); testutil.Must(t, os.WriteFile(p, []byte(s), 0o644)) }
	write(sstCnf, "[sst]\ntransfer-streams = 2\n")
	write(filepath.Join(targets, "a.cnf"), "[sst]\nrlimit = 1M\n")
	write(filepath.Join(targets, "b.cnf"), "[sst]\nrlimit = 2M\n")
	testutil.Must(t, os.Symlink("../targets/a.cnf", link))

	logs := &logLines{rec: logtest.NewRecorder()}
	n := startFake(t, "normal", func(c *Config, datadir string) {
		write(cnf, "[mysqld]\ndatadir = "+datadir+"\nwsrep-on = ON\nuser = root\n!includedir "+confd+"\n")
		c.Defaults = Defaults{File: cnf}
		c.LoadOptions = LoadOptionFiles(c.Defaults, logs.rec.Logger())
		c.Watch = true
		c.Log = logs.rec.Logger()
	})
	n.waitReady()
	pid := n.sup.PID()
	lookup := func(o sst.Options, groups []string, name string) string { v, _ := o.Lookup(groups, name); return v }
	if o := nextSST(t, n.dir, cnf); lookup(o, sst.SSTGroups, "transfer-streams") != "2" || lookup(o, sst.SSTGroups, "rlimit") != "1M" {
		t.Fatalf("first SST: transfer-streams %q rlimit %q", lookup(o, sst.SSTGroups, "transfer-streams"), lookup(o, sst.SSTGroups, "rlimit"))
	}

	steps := []struct {
		name     string
		edit     func()
		log      string // seen within 1 s
		sst      string // option of the next SST's [sst] ...
		value    string // ... and its value
		restarts bool
	}{
		{"rename over the file", func() {
			write(sstCnf+".tmp", "[sst]\ntransfer-streams = 3\n")
			testutil.Must(t, os.Rename(sstCnf+".tmp", sstCnf))
		}, nextSSTLine("transfer-streams", "2", "3", sstCnf, 2), "transfer-streams", "3", false},
		{"in-place write", func() {
			write(sstCnf, "[sst]\n# streams\ntransfer-streams = 4\n")
		}, nextSSTLine("transfer-streams", "3", "4", sstCnf, 3), "transfer-streams", "4", false},
		{"new file in the includedir", func() {
			write(filepath.Join(confd, "z.cnf"), "[sst]\nsst-initial-timeout = 60\n")
		}, nextSSTLine("sst-initial-timeout", "unset", "60", filepath.Join(confd, "z.cnf"), 2), "sst-initial-timeout", "60", false},
		{"symlink retarget", func() {
			testutil.Must(t, os.Symlink("../targets/b.cnf", link+".new"))
			testutil.Must(t, os.Rename(link+".new", link))
		}, nextSSTLine("rlimit", "1M", "2M", link, 2), "rlimit", "2M", false},
		{"broken edit", func() {
			write(sstCnf, "[sst\ntransfer-streams = 5\n")
		}, "option files: edit refused; keeping the last good configuration refused=" + strconv.Quote(sstCnf+":1: wrong group definition (no closing ']')"), "transfer-streams", "4", false},
		{"invalid value", func() {
			write(sstCnf, "[sst]\ntransfer-streams = 0\n")
		}, "option files: edit refused; keeping the last good configuration refused=" + strconv.Quote(sstCnf+":2: error: [sst] transfer-streams=0: want 1 to 64"), "transfer-streams", "4", false},
		{"fixed", func() {
			write(sstCnf, "[sst]\ntransfer-streams = 6\n")
		}, nextSSTLine("transfer-streams", "4", "6", sstCnf, 2), "transfer-streams", "6", false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			time.Sleep(200 * time.Millisecond) // the last edit's events settle
			from := logs.mark()
			start := time.Now()
			st.edit()
			rec, d, err := logs.waitFor(from, st.log, start, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("seen after %v: %s", d, rec.Line)
			if got := lookup(nextSST(t, n.dir, cnf), sst.SSTGroups, st.sst); got != st.value {
				t.Errorf("the next SST has %s = %q, want %q", st.sst, got, st.value)
			}
		})
	}

	t.Run("server group", func(t *testing.T) {
		time.Sleep(200 * time.Millisecond)
		from := logs.mark()
		start := time.Now()
		b, err := os.ReadFile(cnf)
		testutil.Must(t, err)
		write(cnf, strings.Replace(string(b), "user = root\n", "user = root\nmax_connections = 10\n", 1))
		rec, _, err := logs.waitFor(from, "option files: changed, needs a restart of mariadbd option=max-connections old=unset new=10 option_group=mysqld option_file="+cnf+" option_line=5 applies=restart", start, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if a := rec.Attrs; a["option"] != "max-connections" || a["option_file"] != cnf || a["option_line"] != "5" || a["applies"] != "restart" {
			t.Errorf("attributes %v", a)
		}
		o := nextSST(t, n.dir, cnf)
		if v, ok := o.Lookup(sst.ServerGroups, "max-connections"); ok {
			t.Errorf("the SST sees the server's max-connections = %q, which mariadbd does not run with", v)
		}
		if lookup(o, sst.SSTGroups, "transfer-streams") != "6" {
			t.Errorf("[sst] lost after a server group edit: %q", lookup(o, sst.SSTGroups, "transfer-streams"))
		}
	})
	if p := n.sup.PID(); p != pid {
		t.Errorf("mariadbd restarted: pid %d, then %d", pid, p)
	}
	if !n.events()["sighup"].IsZero() {
		t.Error("an edit sent mariadbd a SIGHUP")
	}
	// It holds [sst] secrets: for mariadbd's user alone, and gone at exit.
	env, _ := os.ReadFile(filepath.Join(n.dir, "options-env"))
	snapshot := string(env)
	if fi, err := os.Stat(snapshot); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot %s: mode %v, want 0600", snapshot, fi.Mode())
	}
	n.stop()
	if err := n.result(10 * time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(snapshot); !os.IsNotExist(err) {
		t.Errorf("snapshot %s left behind: %v", snapshot, err)
	}
}
