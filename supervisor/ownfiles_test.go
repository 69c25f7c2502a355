package supervisor

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/maintenance"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// stockJoiner does to datadir what a stock joiner may: remove every file
// its cpat does not keep (wsrep_sst_mariabackup), then bring in the donor's.
func stockJoiner(t *testing.T, datadir string, donor map[string]string) {
	t.Helper()
	for _, name := range ownFileNames {
		if err := os.Remove(filepath.Join(datadir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	for name, content := range donor {
		if err := os.WriteFile(filepath.Join(datadir, name), []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

func testJoinerRunner(t *testing.T) (*runner, string) {
	dir := t.TempDir()
	s := &Supervisor{log: slog.New(slog.NewTextHandler(io.Discard, nil)), datadir: dir}
	return &runner{s: s, opts: Options{Server: map[string]string{"datadir": dir}}}, dir
}

func readOrNone(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The joiner's own files win over the donor's and survive a stock
// joiner's cleanup; a file the joiner did not have does not appear.
func TestOwnFilesAcrossJoinerSST(t *testing.T) {
	donor := map[string]string{
		maintenance.File:    `{"since":"2026-01-01T00:00:00Z","reason":"donor's"}` + "\n",
		quorum.DecisionFile: `{"action":"donor's"}` + "\n",
		SSTIncompleteFile:   "donor's\n",
	}
	t.Run("joiner had them", func(t *testing.T) {
		r, dir := testJoinerRunner(t)
		st := maintenance.State{Since: time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC), Reason: "joiner's"}
		if err := maintenance.Write(dir, st); err != nil {
			t.Fatal(err)
		}
		if _, err := r.s.applyMaintenance(); err != nil {
			t.Fatal(err)
		}
		decision := `{"action":"joiner's"}` + "\n"
		if err := os.WriteFile(filepath.Join(dir, quorum.DecisionFile), []byte(decision), 0o640); err != nil {
			t.Fatal(err)
		}
		maint := readOrNone(t, filepath.Join(dir, maintenance.File))

		r.joinerSST()
		marker := readOrNone(t, filepath.Join(dir, SSTIncompleteFile))
		stockJoiner(t, dir, donor)
		r.keepOwnFiles() // the joiner's script ended
		for name, want := range map[string]string{maintenance.File: maint, quorum.DecisionFile: decision, SSTIncompleteFile: marker} {
			if got := readOrNone(t, filepath.Join(dir, name)); got != want {
				t.Errorf("after the SST, %s = %q, want the joiner's %q", name, got, want)
			}
		}
		r.sstCompleted() // Synced
		if got := readOrNone(t, filepath.Join(dir, SSTIncompleteFile)); got != "<none>" {
			t.Errorf("Synced: marker = %q, want none", got)
		}
		if got := readOrNone(t, filepath.Join(dir, quorum.DecisionFile)); got != decision {
			t.Errorf("Synced: decision = %q, want the joiner's %q", got, decision)
		}
	})
	t.Run("joiner had none", func(t *testing.T) {
		r, dir := testJoinerRunner(t)
		r.joinerSST()
		stockJoiner(t, dir, donor)
		r.keepOwnFiles()
		if got := readOrNone(t, filepath.Join(dir, SSTIncompleteFile)); got == donor[SSTIncompleteFile] || got == "<none>" {
			t.Errorf("after the SST, marker = %q, want the joiner's", got)
		}
		r.sstCompleted()
		for _, name := range ownFileNames {
			if got := readOrNone(t, filepath.Join(dir, name)); got != "<none>" {
				t.Errorf("%s = %q: the donor's copy stayed", name, got)
			}
		}
	})
	t.Run("maintenance turned on during the SST", func(t *testing.T) {
		r, dir := testJoinerRunner(t)
		r.joinerSST()
		if err := maintenance.Write(dir, maintenance.State{Reason: "operator"}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.s.applyMaintenance(); err != nil {
			t.Fatal(err)
		}
		stockJoiner(t, dir, nil)
		r.keepOwnFiles()
		st, err := maintenance.Read(dir)
		if err != nil || st == nil || st.Reason != "operator" {
			t.Errorf("maintenance after the SST = %+v, %v; want the operator's", st, err)
		}
	})
}
