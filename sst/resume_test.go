package sst

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
)

const (
	clusterA = "e1060d8c-a7e1-11ef-9a39-0e5cc7e5c2b4"
	clusterB = "0b5c1d2e-a7e1-11ef-9a39-0e5cc7e5c2b4"
)

// brokenSST leaves in root what a joiner of cluster killed mid-transfer
// leaves: its staging with a file half received, and the marker.
func brokenSST(t *testing.T, root, cluster string) {
	t.Helper()
	st, err := ResumeStaging(root, nil, logtest.New(t), cluster)
	if err != nil {
		t.Fatal(err)
	}
	f, err := st.Create("bench/t.ibd", 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("half")
	f.Close()
	st.unlock() // killed: no Abort, no Keep
}

func staged(root string) bool {
	_, err := os.Stat(filepath.Join(root, StagingDirName, "bench", "t.ibd"))
	return err == nil
}

// TestResumeStaging: a staging left by an SST of the donor's cluster is
// kept; one of another cluster, without a marker, or with a corrupt one is
// removed, and the log says why; a donor that says no cluster resumes
// nothing.
func TestResumeStaging(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster string // the new SST's donor's
		mark    func(root string)
		resumed bool
		why     string
	}{
		{name: "same cluster", cluster: clusterA, resumed: true},
		{name: "other cluster", cluster: clusterB, why: "it is of cluster " + clusterA + ", the donor of " + clusterB},
		{name: "donor says none", cluster: "", why: "the donor did not say its cluster UUID"},
		{name: "no marker", cluster: clusterA, mark: func(root string) { os.Remove(filepath.Join(root, ResumeName)) }, why: "no " + ResumeName},
		{name: "corrupt marker", cluster: clusterA, mark: func(root string) { os.WriteFile(filepath.Join(root, ResumeName), []byte("{\"clus"), 0o640) }, why: "unreadable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			brokenSST(t, root, clusterA)
			if tc.mark != nil {
				tc.mark(root)
			}
			rec := logtest.NewRecorder()
			st, err := ResumeStaging(root, nil, rec.Logger(), tc.cluster)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Abort()
			if st.Resumed != tc.resumed || staged(root) != tc.resumed {
				t.Errorf("Resumed %v, file staged %v; want %v", st.Resumed, staged(root), tc.resumed)
			}
			said := strings.Join(rec.Lines(), "\n")
			if tc.why != "" && !strings.Contains(said, tc.why) {
				t.Errorf("log %q does not say %q", said, tc.why)
			}
			m, err := readResume(root)
			switch {
			case tc.cluster == "" && err == nil:
				t.Errorf("a staging of no known cluster is marked %s", m.Cluster)
			case tc.cluster != "" && (err != nil || m.Cluster != tc.cluster):
				t.Errorf("marker %+v, %v; want cluster %s", m, err, tc.cluster)
			}
		})
	}
}

// TestKeepAndCleanup: Keep leaves the staging and its marker, and so does
// the supervisor's Cleanup at the next start; Abort, a successful swap
// and DiscardResume remove both.
func TestKeepAndCleanup(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, oldDatadir)
	st, err := ResumeStaging(root, nil, logtest.New(t), clusterA)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := st.Create("bench/t.ibd", 0o640)
	f.WriteString("half")
	f.Close()
	if !st.Keep() {
		t.Fatal("Keep removed a marked staging")
	}
	rec := logtest.NewRecorder()
	if err := Cleanup(root, rec.Logger()); err != nil {
		t.Fatal(err)
	}
	if !staged(root) || !strings.Contains(strings.Join(rec.Messages(), "\n"), "resumes from it") {
		t.Fatalf("Cleanup did not keep the staging for resume: %q", rec.Messages())
	}
	if err := DiscardResume(root, "the node is Synced", logtest.New(t)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{StagingDirName, ResumeName} {
		if _, err := os.Lstat(filepath.Join(root, n)); err == nil {
			t.Errorf("DiscardResume left %s", n)
		}
	}

	// Without a marker, Keep and Cleanup remove it.
	st, err = ResumeStaging(root, nil, logtest.New(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Keep() || staged(root) {
		t.Error("Keep kept an unmarked staging")
	}

	// A swap consumes the staging and its marker.
	before := treeHash(t, root)
	st, err = ResumeStaging(root, nil, logtest.New(t), clusterA)
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, st.Dir, map[string]string{"ibdata1": "new"})
	if err := Swap(st); err != nil {
		t.Fatal(err)
	}
	if treeHash(t, root) == before {
		t.Error("swap changed nothing")
	}
	for _, n := range []string{StagingDirName, ResumeName} {
		if _, err := os.Lstat(filepath.Join(root, n)); err == nil {
			t.Errorf("swap left %s", n)
		}
	}
}

func FuzzParseResume(f *testing.F) {
	f.Add([]byte(`{"cluster":"` + clusterA + `","since":"2026-12-07T20:00:00Z"}`))
	f.Add([]byte(`{"cluster":"00000000-0000-0000-0000-000000000000"}`))
	f.Add([]byte(`{"cluster":1}`))
	f.Add([]byte(`nonsense`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseResume(b)
		if err == nil && (len(m.Cluster) != 36 || m.Cluster == "00000000-0000-0000-0000-000000000000") {
			t.Fatalf("accepted cluster %q", m.Cluster)
		}
	})
}
