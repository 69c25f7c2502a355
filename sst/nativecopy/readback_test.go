package nativecopy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/readback"
)

// A file that changes on the joiner's disk after its chunks were checked
// (the test seam flips a byte just before the read-back) fails the SST
// with EIO naming the file and its path on the joiner; the old datadir
// and the donor's are left as they were, the staging removed. In a full
// transfer and in a delta, where only the changed blocks of bench/t.ibd
// are sent.
func TestReadBackMismatch(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(map[bool]string{false: "full", true: "delta"}[delta], func(t *testing.T) {
			t.Setenv(readback.FlipEnv, "bench/t.ibd")
			jd, dd := newPair(t)
			opts := map[string]string{"delta": "0"}
			if delta {
				copyDonorFiles(jd, dd)
				f, _ := os.OpenFile(filepath.Join(dd, "bench/t.ibd"), os.O_WRONLY, 0)
				f.WriteAt(bytes.Repeat([]byte{0xAB}, 5000), 3<<20+17)
				f.Close()
				opts["delta"] = "1"
			}
			donorBefore, joinerBefore := snapshot(t, dd), snapshot(t, jd)
			r := &sstRun{joinerDir: jd, donorDir: dd, joinerOpts: opts}
			r.run(t, context.Background())
			t.Logf("joiner: %v\ndonor: %v", r.joinerErr, r.donorErr)
			where := filepath.Join(jd, sst.StagingDirName, "bench/t.ibd")
			if r.joinerErr == nil || !strings.Contains(r.joinerErr.Error(), "bench/t.ibd: read back from "+where) || sst.ExitCode(r.joinerErr) != int(syscall.EIO) {
				t.Errorf("joiner: %v (exit %d), want EIO naming bench/t.ibd at %s", r.joinerErr, sst.ExitCode(r.joinerErr), where)
			}
			if r.donorErr == nil || !strings.Contains(r.donorErr.Error(), where) {
				t.Errorf("donor: %v, want the joiner's account naming %s", r.donorErr, where)
			}
			if delta && !strings.Contains(r.donor.stderr.String(), "delta mode:") {
				t.Errorf("delta mode not used:\n%s", r.donor.stderr)
			}
			if d := diffSnap(joinerBefore, snapshot(t, jd)); d != "" {
				t.Errorf("joiner datadir changed:\n%s", d)
			}
			if d := diffSnap(donorBefore, snapshot(t, dd)); d != "" {
				t.Errorf("donor datadir changed:\n%s", d)
			}
			if _, err := os.Lstat(filepath.Join(jd, sst.StagingDirName)); err == nil {
				t.Error("staging left behind")
			}
		})
	}
}
