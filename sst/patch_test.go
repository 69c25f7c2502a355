package sst

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
)

// readAll reads a base as the swap will leave it.
func readAll(t *testing.T, p *Patch) []byte {
	t.Helper()
	b := make([]byte, p.Size()+10)
	n, err := p.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b[:n]
}

// A base's staging stores only the units that differ from it, however
// the donor's ranges fall, and reads back as the new file.
func TestPatchStoresOnlyWhatDiffers(t *testing.T) {
	root := t.TempDir()
	old := bytes.Repeat([]byte("0123456789abcdef"), 64*cmpUnit/16) // 64 units
	writeFiles(t, root, map[string]string{"db/t.ibd": string(old)})
	st, err := NewStaging(root, nil, logtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Abort()
	p, err := st.Base("db/t.ibd")
	if err != nil {
		t.Fatal(err)
	}
	cur := bytes.Clone(old)
	cur[5*cmpUnit+7] ^= 1  // unit 5
	cur[40*cmpUnit+1] ^= 1 // unit 40
	cur[41*cmpUnit] ^= 1   // unit 41: next to 40
	// A 1 MiB-style range covering all of them, sent as two chunks.
	if err := p.WriteAt(cur[:32*cmpUnit], 0); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteAt(cur[32*cmpUnit:], 32*cmpUnit); err != nil {
		t.Fatal(err)
	}
	if err := p.End(int64(len(cur))); err != nil {
		t.Fatal(err)
	}
	if got := p.Stored(); got != 3*cmpUnit {
		t.Errorf("stored %d bytes, want the 3 units that differ (%d)", got, 3*cmpUnit)
	}
	if !bytes.Equal(readAll(t, p), cur) {
		t.Fatal("the base with its patch does not read as the new file")
	}
	var fi syscall.Stat_t
	if err := syscall.Stat(p.patchPath(), &fi); err != nil {
		t.Fatal(err)
	}
	if alloc := fi.Blocks * 512; alloc > 3*cmpUnit+64<<10 {
		t.Errorf("the patch file takes %d bytes on disk for %d that differ", alloc, 3*cmpUnit)
	}
	// A later pass finds unit 40 as it was: its patch goes. The file grows.
	copy(cur[40*cmpUnit:], old[40*cmpUnit:41*cmpUnit])
	cur = append(cur, "grown"...)
	if err := p.WriteAt(cur[40*cmpUnit:], 40*cmpUnit); err != nil {
		t.Fatal(err)
	}
	p.End(int64(len(cur)))
	if got, want := p.Stored(), int64(2*cmpUnit+len("grown")); got != want {
		t.Errorf("stored %d bytes after the second pass, want %d", got, want)
	}
	if !bytes.Equal(readAll(t, p), cur) {
		t.Fatal("after the second pass, the base with its patch does not read as the new file")
	}
	// Shrunk below the last patched unit.
	p.End(10 * cmpUnit)
	if got := p.Stored(); got != cmpUnit {
		t.Errorf("stored %d bytes after shrinking, want unit 5 only", got)
	}
	if !bytes.Equal(readAll(t, p), cur[:10*cmpUnit]) {
		t.Fatal("shrunk: the base with its patch does not read as the new file")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "db/t.ibd")); !bytes.Equal(b, old) {
		t.Fatal("the base changed before the swap")
	}
}

// An undo journal that does not check out is not played: recovery fails
// naming it, and the files stay as they are.
func TestUndoJournalDamaged(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, oldDatadir)
	st, _ := stage(t, root)
	st.failpoint = func(step string) error {
		if step == "apply:bench/shrink.ibd" {
			return errCrashed
		}
		return nil
	}
	sw := &swap{s: st, old: filepath.Join(root, OldDirName), journal: filepath.Join(root, JournalName)}
	if err := sw.do(); err != errCrashed {
		t.Fatalf("do: %v", err)
	}
	undo := filepath.Join(root, UndoName)
	b, err := os.ReadFile(undo)
	if err != nil {
		t.Fatal(err)
	}
	good := bytes.Clone(b)
	b[len(undoMagic)+20] ^= 0xff
	os.WriteFile(undo, b, 0o600)
	patched := treeHash(t, root)
	err = Recover(root, logtest.New(t))
	if err == nil || !strings.Contains(err.Error(), undo) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("Recover with a damaged undo journal: %v", err)
	}
	if treeHash(t, root) != patched {
		t.Fatal("a damaged undo journal was played")
	}
	// Intact again, it rolls the patch back.
	os.WriteFile(undo, good, 0o600)
	if err := Recover(root, logtest.New(t)); err != nil {
		t.Fatal(err)
	}
	for rel, c := range baseFiles {
		if b, _ := os.ReadFile(filepath.Join(root, rel)); string(b) != c[0] {
			t.Errorf("%s not rolled back", rel)
		}
	}
}

var errCrashed = io.ErrClosedPipe

// FuzzReadUndo: whatever a damaged disk leaves as the undo journal, the
// reader returns an error or a journal whose paths stay inside the root,
// and never panics.
func FuzzReadUndo(f *testing.F) {
	dir := f.TempDir()
	os.Mkdir(filepath.Join(dir, "a"), 0o750)
	if err := os.WriteFile(filepath.Join(dir, "a/b.ibd"), []byte(strings.Repeat("x", 3*cmpUnit)), 0o600); err != nil {
		f.Fatal(err)
	}
	st := &Staging{Root: dir, Dir: filepath.Join(dir, StagingDirName)}
	p := &Patch{s: st, rel: "a/b.ibd", oldSize: 3 * cmpUnit, size: 2 * cmpUnit, spans: []pspan{{10, 20}}}
	if err := writeUndo(dir, []*Patch{p}); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join(dir, UndoName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(undoMagic))
	f.Add([]byte(undoMagic + "E\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := parseUndo(bytes.NewReader(b), UndoName, func(uf undoFile) error {
			if CheckPath(uf.Rel) != nil {
				t.Fatalf("path %q accepted", uf.Rel)
			}
			return nil
		}, func(off int64, d []byte) error {
			if off < 0 || len(d) > undoChunk {
				t.Fatalf("range %d+%d accepted", off, len(d))
			}
			return nil
		})
		if err == nil && !bytes.HasPrefix(b, []byte(undoMagic)) {
			t.Fatal("a journal without the magic accepted")
		}
	})
}

// Before a swap patches anything in place, the filesystem must hold the
// undo journal (and the reserve): else it fails with ENOSPC saying so,
// and the old datadir is as it was. The journal's size is known exactly.
func TestUndoSpace(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, oldDatadir)
	st, _ := stage(t, root)
	need := int64(len(undoMagic)) + 1 + 4
	for _, p := range st.bases {
		if p.changed() {
			need += p.undoBytes()
		}
	}
	before := treeHash(t, root)
	defer func() { freeSpace = FreeSpace }()
	freeSpace = func(string) (int64, error) { return need + SpaceReserve - 1, nil }
	err := Swap(st)
	if ExitCode(err) != int(ENOSPC) || !strings.Contains(err.Error(), "undo journal") || !strings.Contains(err.Error(), root) {
		t.Fatalf("Swap with no room for the undo journal: %v", err)
	}
	if treeHash(t, root) != before {
		t.Fatal("the failed swap changed the datadir")
	}
	// Room for it: the journal written is the size asked for.
	freeSpace = func(string) (int64, error) { return need + SpaceReserve, nil }
	st.failpoint = func(step string) error {
		if step == "apply:bench/grow.ibd" {
			return errCrashed
		}
		return nil
	}
	sw := &swap{s: st, old: filepath.Join(root, OldDirName), journal: filepath.Join(root, JournalName)}
	if err := sw.do(); err != errCrashed {
		t.Fatalf("do: %v", err)
	}
	fi, err := os.Stat(filepath.Join(root, UndoName))
	if err != nil || fi.Size() != need {
		t.Fatalf("undo journal: %v, want %d bytes", fi, need)
	}
}
