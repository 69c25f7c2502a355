package nativecopy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst"
)

// TestDeltaAuto: with [sst] delta unset (auto), a joiner whose old datadir
// is of the donor's cluster gets only the blocks that differ; one of
// another cluster, or one an SST left half written, gets everything, and
// the joiner's log says why. Either way the result is the donor's datadir.
func TestDeltaAuto(t *testing.T) {
	const otherUUID = "0b7f1c2e-0000-11ef-9a39-0e5cc7e5c2b4"
	stamp := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		cluster string
		marker  string
		text    string // the marker's, when it has one
		delta   bool
		why     string // the delta_reason's start
	}{
		{"same cluster", testUUID, "", "", true, "an old datadir of cluster " + testUUID},
		{"other cluster", otherUUID, "", "", false, "the old datadir is of cluster " + otherUUID + ", the donor of " + testUUID},
		{"stock SST killed", testUUID, sst.InProgressFile, "", false, "the old datadir holds an incomplete SST: " + sst.InProgressFile + " left in the datadir"},
		// Under the supervisor, which removes sst_in_progress before it
		// starts mariadbd again: its marker names the SST's method.
		{"stock SST killed, supervised", testUUID, sst.IncompleteFile, sst.IncompleteWhy("rsync", stamp), false,
			"the old datadir holds an incomplete SST: " + sst.IncompleteFile + " says " + sst.IncompleteWhy("rsync", stamp)},
		{"native SST interrupted, supervised", testUUID, sst.IncompleteFile, sst.IncompleteWhy("native-copy", stamp), true, "an old datadir of cluster " + testUUID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jd, dd := newPair(t)
			copyDonorFiles(jd, dd)
			// Galera 4's gcache preamble; grastate.dat has the zero UUID by
			// the time the SST runs.
			preamble := "* GCache v2.0 *\nVersion: 2\nGID: " + tc.cluster + "\nseqno_min: 38\nseqno_max: 38\noffset: 20440\nsynced: 1\n"
			if err := os.WriteFile(filepath.Join(jd, gcacheFile), append([]byte(preamble), make([]byte, 1000)...), 0o640); err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.text != "":
				if err := os.WriteFile(filepath.Join(jd, tc.marker), []byte(tc.text+"\n"), 0o640); err != nil {
					t.Fatal(err)
				}
			case tc.marker != "":
				mkfiles(t, jd, map[string]int{tc.marker: 10})
			}
			f, _ := os.OpenFile(filepath.Join(dd, "bench/t.ibd"), os.O_WRONLY, 0)
			f.WriteAt(bytes.Repeat([]byte{0xCD}, 3000), 2<<20+5)
			f.Close()
			donorBefore, joinerBefore := snapshot(t, dd), snapshot(t, jd)

			r := &sstRun{joinerDir: jd, donorDir: dd}
			r.run(t, context.Background())
			if r.joinerErr != nil || r.donorErr != nil {
				t.Fatalf("joiner: %v\ndonor: %v\n%s\n%s", r.joinerErr, r.donorErr, r.joiner.stderr, r.donor.stderr)
			}
			want := wantAfterCopy(donorBefore, joinerBefore)
			if tc.text != "" {
				want[tc.marker] = joinerBefore[tc.marker] // the node's own: the supervisor's to remove
			}
			if d := diffSnap(want, snapshot(t, jd)); d != "" {
				t.Errorf("joiner datadir differs from the donor's:\n%s", d)
			}
			jl, dl := r.joiner.stderr.String(), r.donor.stderr.String()
			say := "delta: off, full transfer "
			if tc.delta {
				say = "delta: comparing blocks with the old datadir "
			}
			if why := `delta_reason="` + tc.why; !strings.Contains(jl, say) || !strings.Contains(jl, why) {
				t.Errorf("the joiner's log does not say %q with %s:\n%s", say, why, jl)
			}
			if got := strings.Contains(dl, "delta mode:"); got != tc.delta {
				t.Errorf("delta used: %v, want %v:\n%s", got, tc.delta, dl)
			}
			t.Logf("joiner: %s\ndonor: %s", grepDelta(jl), grepDelta(dl))
			if tc.delta && !strings.Contains(jl, "] delta: bytes that differ ") {
				t.Errorf("the joiner's log does not say how much differed:\n%s", jl)
			}
		})
	}
}

func grepDelta(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "delta") || strings.Contains(l, "received") || strings.Contains(l, "verified") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}
