package sst

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
)

// placeSession is a joiner whose undo directory and binlog are outside
// its datadir.
func placeSession(t *testing.T) (*Session, string) {
	base := t.TempDir()
	data := filepath.Join(base, "data")
	os.MkdirAll(data, 0o750)
	return &Session{Method: "native-backup", Datadir: data, Options: MapOptions{}, Log: logging.OrDiscard(nil),
		Args: &Args{Role: Joiner, Datadir: data, InnoDBUndoDirectory: filepath.Join(base, "undo"),
			Binlog: filepath.Join(base, "binlogs", "mysql-bin"), BinlogIndex: filepath.Join(base, "binidx", "mysql-bin.index")}}, base
}

// A snapshot staged whole in the datadir (native-backup) is routed to
// the joiner's own directories and the donor's DATA DIRECTORY path, each
// staged beside its target; Finish writes the binlog index and the
// MyISAM symlink, and the swap puts every file in place.
func TestPlacementInData(t *testing.T) {
	s, base := placeSession(t)
	ext := filepath.Join(base, "ext", "db")
	in := Incoming{Total: 1000, Tags: map[string]int64{TagInnoDBData: 100, TagInnoDBUndo: 10, TagBinlog: 5}, InData: true,
		Ext: []ExtFile{
			{Name: ExtName(ext + "/t.ibd"), Path: ext + "/t.ibd", Table: "db/t", Size: 3},
			{Name: ExtName(ext + "/m.MYD"), Path: ext + "/m.MYD", Table: "db/m", Link: "db/m.MYD", Size: 2},
		}}
	data, err := NewStaging(s.Datadir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := NewPlacement(s, s.Layout(), data, in, "donor")
	if err != nil {
		t.Fatal(err)
	}
	staged := map[string]string{"ibdata1": "sys", "undo001": "undo", "mysql-bin.000002": "binlog", "db/t.ibd": "tbl", "db/t.isl": ext + "/t.ibd\n", "db/m.MYD": "my", "db/m.frm": "frm"}
	wire := map[string]string{"ibdata1": "ibdata1", "undo001": "@innodb-undo/undo001", "mysql-bin.000002": "@binlog/mysql-bin.000002",
		"db/t.ibd": ExtName(ext + "/t.ibd"), "db/t.isl": "db/t.isl", "db/m.MYD": ExtName(ext + "/m.MYD"), "db/m.frm": "db/m.frm"}
	var files []ManifestEntry
	for rel, body := range staged {
		p := filepath.Join(data.Dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o750)
		os.WriteFile(p, []byte(body), 0o640)
		x, there, err := pl.Route(wire[rel])
		if err != nil {
			t.Fatal(err)
		}
		if x != data || there != rel {
			if err := x.Adopt(p, there); err != nil {
				t.Fatal(err)
			}
		}
		files = append(files, ManifestEntry{Path: wire[rel], Size: int64(len(body))})
	}
	stagings, err := pl.Finish(files)
	if err != nil {
		t.Fatal(err)
	}
	if err := Swap(stagings...); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		filepath.Join(s.Datadir, "ibdata1"): "sys", filepath.Join(base, "undo", "undo001"): "undo",
		filepath.Join(base, "binlogs", "mysql-bin.000002"): "binlog", filepath.Join(ext, "t.ibd"): "tbl",
		filepath.Join(s.Datadir, "db", "t.isl"): ext + "/t.ibd\n", filepath.Join(s.Datadir, "db", "m.MYD"): "my",
		filepath.Join(base, "binidx", "mysql-bin.index"): filepath.Join(base, "binlogs", "mysql-bin.000002") + "\n",
	} {
		if b, err := os.ReadFile(p); err != nil || string(b) != want {
			t.Errorf("%s: %q (%v), want %q", p, b, err, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(s.Datadir, "db", "m.MYD")); err != nil || l != ext+"/m.MYD" {
		t.Errorf("db/m.MYD: symlink to %q (%v)", l, err)
	}
}

// A DATA DIRECTORY file already there that no table of the joiner names
// refuses before anything is staged outside the datadir, naming the
// table and the path.
func TestPlacementRefusesForeignFile(t *testing.T) {
	s, base := placeSession(t)
	ext := filepath.Join(base, "ext", "db")
	os.MkdirAll(ext, 0o750)
	os.WriteFile(filepath.Join(ext, "t.ibd"), []byte("someone else's"), 0o640)
	data, err := NewStaging(s.Datadir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Abort()
	in := Incoming{Total: 10, Tags: map[string]int64{TagInnoDBUndo: 1}, Ext: []ExtFile{{Name: ExtName(ext + "/t.ibd"), Path: ext + "/t.ibd", Table: "db/t", Size: 3}}}
	_, err = NewPlacement(s, s.Layout(), data, in, "donor")
	if err == nil || !strings.Contains(err.Error(), "table db/t: "+ext+"/t.ibd already exists") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "undo", StagingDirName)); err == nil {
		t.Error("a staging was left in the undo directory")
	}
}

// A delta's bases stay where they are: the space asked for is what comes
// beyond them (the patches' room is checked when they are known), and it
// is checked when CheckSpace is called, once the bases are declared.
func TestPlacementSpaceDelta(t *testing.T) {
	s, _ := placeSession(t)
	if err := os.WriteFile(filepath.Join(s.Datadir, "ibdata1"), make([]byte, 3<<20), 0o640); err != nil {
		t.Fatal(err)
	}
	data, err := NewStaging(s.Datadir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Abort()
	in := Incoming{Total: 5 << 20, Tags: map[string]int64{}, SpaceLater: true}
	pl, err := NewPlacement(s, s.Layout(), data, in, "donor")
	if err != nil {
		t.Fatal(err)
	}
	if got := pl.needs(in)[s.Datadir]; got != 5<<20 {
		t.Errorf("need %d before the bases, want the snapshot's %d", got, 5<<20)
	}
	if _, err := data.Base("ibdata1"); err != nil {
		t.Fatal(err)
	}
	if got := pl.needs(in)[s.Datadir]; got != 2<<20 {
		t.Errorf("need %d with ibdata1 a base, want what comes beyond it (%d)", got, 2<<20)
	}
	if err := pl.CheckSpace(); err != nil {
		t.Fatal(err)
	}
	// SpaceLater: NewPlacement leaves the check to CheckSpace.
	huge := Incoming{Total: 1 << 62, SpaceLater: true}
	pl, err = NewPlacement(s, s.Layout(), data, huge, "10.0.0.9")
	if err != nil {
		t.Fatalf("NewPlacement checked the space: %v", err)
	}
	if err := pl.CheckSpace(); ExitCode(err) != int(ENOSPC) || !strings.Contains(err.Error(), "10.0.0.9") {
		t.Fatalf("CheckSpace = %v", err)
	}
}
