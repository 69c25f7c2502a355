package progress

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func write(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, n), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendTo(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
}

func scan(t *testing.T, m *DiskMeter) DiskScan {
	t.Helper()
	s, err := m.Scan()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDiskMeter follows what an rsync, a mariabackup and a mysqldump SST do
// to a joiner's directories.
func TestDiskMeter(t *testing.T) {
	dir := t.TempDir()
	data, logs := filepath.Join(dir, "data"), filepath.Join(dir, "redo")
	write(t, filepath.Join(data, "ibdata1"), 1000) // the old datadir
	write(t, filepath.Join(data, "galera.cache"), 5000)
	m := &DiskMeter{Roots: []string{data, logs, filepath.Join(data, "db")}}
	if s := scan(t, m); s.Landed != 0 || s.Changed || s.Files != 1 {
		t.Fatalf("baseline: %+v", s)
	}
	if s := scan(t, m); s.Landed != 0 || s.Changed {
		t.Fatalf("nothing moved: %+v", s)
	}

	// The joiner cleans the old datadir: nothing landed, but it changed.
	os.Remove(filepath.Join(data, "ibdata1"))
	if s := scan(t, m); s.Landed != 0 {
		t.Fatalf("after a removal: %+v", s)
	}

	// rsync writes a temporary file, grows it, renames it into place.
	tmp := filepath.Join(data, "db", ".t.ibd.Xa1b2c")
	write(t, tmp, 300)
	write(t, filepath.Join(logs, "ib_logfile0"), 200) // outside the datadir
	if s := scan(t, m); s.Landed != 500 || !s.Changed {
		t.Fatalf("new files: %+v, want 500 landed", s)
	}
	appendTo(t, tmp, 100)
	if err := os.Rename(tmp, filepath.Join(data, "db", "t.ibd")); err != nil {
		t.Fatal(err)
	}
	if s := scan(t, m); s.Landed != 600 || !s.Changed {
		t.Fatalf("grown and renamed: %+v, want 600", s)
	}

	// mariabackup's --prepare rewrites in place: changed, nothing landed.
	f := filepath.Join(data, "db", "t.ibd")
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(f, later, later); err != nil {
		t.Fatal(err)
	}
	if s := scan(t, m); s.Landed != 600 || !s.Changed {
		t.Fatalf("written in place: %+v", s)
	}

	// Galera's ring buffer, logs and pid files are not the SST.
	appendTo(t, filepath.Join(data, "galera.cache"), 4096)
	write(t, filepath.Join(data, "mariabackup.prepare.log"), 77)
	write(t, filepath.Join(data, "grastate.dat"), 100)
	write(t, filepath.Join(data, "mysqld.pid"), 6)
	if s := scan(t, m); s.Landed != 600 || s.Changed {
		t.Fatalf("only what a stalled SST still writes: %+v", s)
	}

	// A shrinking file (truncated and rewritten) takes nothing back.
	write(t, f, 10)
	if s := scan(t, m); s.Landed != 600 || !s.Changed {
		t.Fatalf("truncated: %+v", s)
	}
	appendTo(t, f, 50)
	if s := scan(t, m); s.Landed != 650 {
		t.Fatalf("regrown: %+v, want 650", s)
	}
}

// TestDiskMeterSymlinkedRoot: a datadir that is a symbolic link is
// followed, as mariadbd follows it.
func TestDiskMeterSymlinkedRoot(t *testing.T) {
	dir := t.TempDir()
	real, link := filepath.Join(dir, "real"), filepath.Join(dir, "mysql")
	write(t, filepath.Join(real, "ibdata1"), 10)
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	m := &DiskMeter{Roots: []string{link}}
	if s := scan(t, m); s.Files != 1 || s.Bytes != 10 {
		t.Fatalf("baseline through the link: %+v", s)
	}
	write(t, filepath.Join(real, "db", "t.ibd"), 90)
	if s := scan(t, m); s.Landed != 90 || s.Bytes != 100 {
		t.Fatalf("through the link: %+v", s)
	}
}

func TestDiskMeterUnreadable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "not-a-dir")
	write(t, file, 1)
	m := &DiskMeter{Roots: []string{filepath.Join(file, "data")}}
	if _, err := m.Scan(); !errors.Is(err, ErrNothingMeasurable) {
		t.Fatalf("root below a file: %v, want ErrNothingMeasurable", err)
	}
	m = &DiskMeter{Roots: []string{file}}
	if _, err := m.Scan(); !errors.Is(err, ErrNothingMeasurable) {
		t.Fatalf("root that is a file: %v, want ErrNothingMeasurable", err)
	}
	// A root not created yet is measurable: nothing has landed there.
	m = &DiskMeter{Roots: []string{filepath.Join(dir, "later")}}
	if s, err := m.Scan(); err != nil || s.Landed != 0 {
		t.Fatalf("missing root: %+v %v", s, err)
	}
	write(t, filepath.Join(dir, "later", "ibdata1"), 42)
	if s := scan(t, m); s.Landed != 42 {
		t.Fatalf("root created after the baseline: %+v", s)
	}
}
