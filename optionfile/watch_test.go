package optionfile

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debianTree lays out what Debian's mariadb-common installs, under root:
// etc/mysql/my.cnf → etc/alternatives/my.cnf → etc/mysql/mariadb.cnf, which
// includes conf.d/ and mariadb.conf.d/. etc/my.cnf does not exist.
func debianTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mk := func(rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inc := "[client-server]\n!includedir " + root + "/etc/mysql/conf.d/\n!includedir " + root + "/etc/mysql/mariadb.conf.d/\n"
	mk("etc/mysql/mariadb.cnf", inc)
	mk("etc/mysql/other.cnf", inc+"[sst]\ntransfer-streams = 7\n")
	mk("etc/mysql/conf.d/mysql.cnf", "[mysql]\n")
	mk("etc/mysql/mariadb.conf.d/50-server.cnf", "[mysqld]\ndatadir = /var/lib/mysql\n")
	mk("etc/mysql/mariadb.conf.d/60-sst.cnf", "[sst]\ntransfer-streams = 2\n")
	if err := os.MkdirAll(filepath.Join(root, "home"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc/alternatives"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../mysql/mariadb.cnf", filepath.Join(root, "etc/alternatives/my.cnf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../alternatives/my.cnf", filepath.Join(root, "etc/mysql/my.cnf")); err != nil {
		t.Fatal(err)
	}
	return root
}

// startWatcher runs a Watcher of root's tree read as the default files,
// and stops it when the test ends.
func startWatcher(t *testing.T, root string, debounce time.Duration) (*Watcher, func() (*Set, error)) {
	t.Helper()
	src := Sources{Home: filepath.Join(root, "home"), Getenv: func(string) string { return "" }}
	sysdirs := []string{root + "/etc/", root + "/etc/mysql/"}
	loadTree := func(src Sources) (*Set, error) { return load(src, osFS{}, sysdirs) }
	w := NewWatcher(src, nil)
	w.Debounce = debounce
	w.load = loadTree
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-w.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return w, func() (*Set, error) { return loadTree(src) }
}

// waitSeen waits, until deadline, for a change after which reread passes
// ok, and returns how long that took.
func waitSeen(t *testing.T, w *Watcher, start time.Time, within time.Duration, reread func() (*Set, error), ok func(*Set) bool) time.Duration {
	t.Helper()
	timeout := time.After(time.Until(start.Add(within)))
	for {
		select {
		case <-w.Changed():
			if set, _ := reread(); ok(set) {
				return time.Since(start)
			}
		case <-timeout:
			set, err := reread()
			t.Fatalf("not seen within %v (files now: %v, %v, broken %v)", within, set.Options("sst"), err, set.Broken())
		}
	}
}

func sstValue(name, want string) func(*Set) bool {
	return func(s *Set) bool {
		o, ok := s.Lookup([]string{"sst"}, name)
		return ok && o.Value == want && len(s.Broken()) == 0
	}
}

// drain lets the events of the last edit settle and drops their signals.
func drain(w *Watcher, d time.Duration) {
	end := time.After(d)
	for {
		select {
		case <-w.Changed():
		case <-end:
			return
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWatcherEdits makes the edits an administrator makes, one after the
// other on one tree: each is seen within 1 s.
func TestWatcherEdits(t *testing.T) {
	root := debianTree(t)
	w, reread := startWatcher(t, root, 50*time.Millisecond)
	if set, err := reread(); err != nil || !sstValue("transfer-streams", "2")(set) {
		t.Fatalf("initial tree: %v %v", set.Options("sst"), err)
	}
	sstFile := filepath.Join(root, "etc/mysql/mariadb.conf.d/60-sst.cnf")
	steps := []struct {
		name string
		edit func(t *testing.T)
		ok   func(*Set) bool
	}{
		{"rename over the file", func(t *testing.T) {
			// As vim and sed -i do: a new file renamed over the old one.
			tmp := sstFile + ".new"
			writeFile(t, tmp, "[sst]\ntransfer-streams = 3\n")
			if err := os.Rename(tmp, sstFile); err != nil {
				t.Fatal(err)
			}
		}, sstValue("transfer-streams", "3")},
		{"in-place write", func(t *testing.T) {
			writeFile(t, sstFile, "[sst]\ntransfer-streams = 4\n")
		}, sstValue("transfer-streams", "4")},
		{"new file in an includedir", func(t *testing.T) {
			writeFile(t, filepath.Join(root, "etc/mysql/conf.d/70-rate.cnf"), "[sst]\nrlimit = 10M\n")
		}, sstValue("rlimit", "10M")},
		{"symlink retarget", func(t *testing.T) {
			// As update-alternatives does: a new link renamed over the old.
			link := filepath.Join(root, "etc/alternatives/my.cnf")
			if err := os.Symlink("../mysql/other.cnf", link+".dpkg-tmp"); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(link+".dpkg-tmp", link); err != nil {
				t.Fatal(err)
			}
		}, sstValue("transfer-streams", "7")},
		{"edit of the new symlink target", func(t *testing.T) {
			p := filepath.Join(root, "etc/mysql/other.cnf")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, p, strings.Replace(string(b), "= 7", "= 9", 1))
		}, sstValue("transfer-streams", "9")},
		{"a default file that did not exist", func(t *testing.T) {
			writeFile(t, filepath.Join(root, "etc/my.cnf"), "[sst]\nsst-initial-timeout = 60\n")
		}, sstValue("sst-initial-timeout", "60")},
		{"broken edit", func(t *testing.T) {
			writeFile(t, sstFile, "[sst\ntransfer-streams = 5\n")
		}, func(s *Set) bool {
			b := s.Broken()
			return len(b) == 1 && b[0].Error() == sstFile+":1: wrong group definition (no closing ']')"
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			drain(w, 150*time.Millisecond)
			start := time.Now()
			st.edit(t)
			t.Logf("seen after %v", waitSeen(t, w, start, time.Second, reread, st.ok))
		})
	}
}

// TestWatcherIgnoresOthers: files beside the tree's (an editor's swap
// file, a non-.cnf file in an includedir) do not fire.
func TestWatcherIgnoresOthers(t *testing.T) {
	root := debianTree(t)
	w, _ := startWatcher(t, root, 20*time.Millisecond)
	writeFile(t, filepath.Join(root, "etc/mysql/mariadb.conf.d/.60-sst.cnf.swp"), "x")
	writeFile(t, filepath.Join(root, "etc/mysql/conf.d/README"), "x")
	writeFile(t, filepath.Join(root, "etc/unrelated.conf"), "x")
	select {
	case <-w.Changed():
		t.Fatal("a change fired for files outside the include tree")
	case <-time.After(400 * time.Millisecond):
	}
}

// TestWatcherDebounce: a burst of writes is one change (or a few), seen
// after the last write.
func TestWatcherDebounce(t *testing.T) {
	root := debianTree(t)
	w, reread := startWatcher(t, root, 200*time.Millisecond)
	sstFile := filepath.Join(root, "etc/mysql/mariadb.conf.d/60-sst.cnf")
	const writes = 25
	start := time.Now()
	for i := 1; i <= writes; i++ {
		writeFile(t, sstFile, "[sst]\ntransfer-streams = "+strconv.Itoa(i)+"\n")
		time.Sleep(20 * time.Millisecond)
	}
	last := time.Now()
	var fired []time.Duration
	end := time.After(1500 * time.Millisecond)
loop:
	for {
		select {
		case <-w.Changed():
			fired = append(fired, time.Since(start))
		case <-end:
			break loop
		}
	}
	t.Logf("%d writes over %v fired %d changes at %v", writes, last.Sub(start), len(fired), fired)
	if len(fired) == 0 || len(fired) > 3 {
		t.Fatalf("%d changes for a burst of %d writes, want 1 to 3", len(fired), writes)
	}
	if fired[len(fired)-1] < last.Sub(start) {
		t.Errorf("last change at %v, before the last write at %v", fired[len(fired)-1], last.Sub(start))
	}
	if set, _ := reread(); !sstValue("transfer-streams", strconv.Itoa(writes))(set) {
		t.Errorf("files read %v", set.Options("sst"))
	}
}

// TestWatcherOverflow: after inotify's queue overflows, events are lost:
// the watcher reads everything again and rebuilds its watches.
func TestWatcherOverflow(t *testing.T) {
	root := debianTree(t)
	w, reread := startWatcher(t, root, 20*time.Millisecond)
	dir, err := filepath.EvalSymlinks(filepath.Join(root, "etc/mysql/mariadb.conf.d"))
	if err != nil {
		t.Fatal(err)
	}
	// Lose this directory's events, as an overflow does.
	if err := w.fw.Remove(dir); err != nil {
		t.Fatal(err)
	}
	sstFile := filepath.Join(dir, "60-sst.cnf")
	writeFile(t, sstFile, "[sst]\ntransfer-streams = 11\n")
	select {
	case <-w.Changed():
		t.Fatal("change seen without a watch: the test does not lose events")
	case <-time.After(300 * time.Millisecond):
	}
	start := time.Now()
	w.fw.Errors <- fsnotify.ErrEventOverflow
	t.Logf("overflow: change seen after %v", waitSeen(t, w, start, time.Second, reread, sstValue("transfer-streams", "11")))
	// The watch is back.
	drain(w, 100*time.Millisecond)
	start = time.Now()
	writeFile(t, sstFile, "[sst]\ntransfer-streams = 12\n")
	waitSeen(t, w, start, time.Second, reread, sstValue("transfer-streams", "12"))
}
