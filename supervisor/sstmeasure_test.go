package supervisor

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"

	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

func TestParseRchar(t *testing.T) {
	io := "rchar: 123456\nwchar: 42\nsyscr: 7\nread_bytes: 4096\n"
	if n, err := parseRchar([]byte(io)); err != nil || n != 123456 {
		t.Fatalf("parseRchar = %d, %v", n, err)
	}
	if _, err := parseRchar([]byte("wchar: 1\n")); err == nil {
		t.Fatal("no rchar: no error")
	}
	if n, err := readRchar(os.Getpid()); err != nil || n <= 0 {
		t.Fatalf("readRchar(self) = %d, %v", n, err)
	}
}

func FuzzParseRchar(f *testing.F) {
	f.Add([]byte("rchar: 123456\nwchar: 42\n"))
	f.Add([]byte("rchar:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := parseRchar(b); err == nil && n < 0 {
			t.Fatalf("negative rchar %d from %q", n, b)
		}
	})
}

func TestPickDonation(t *testing.T) {
	a := &quorum.Donation{Method: "rsync", Joiner: "10.0.0.2:4444/rsync_sst", Total: 1}
	b := &quorum.Donation{Method: "rsync", Joiner: "10.0.0.3:4444/rsync_sst", Total: 2}
	both := map[string]*quorum.Donation{"n1:4569": a, "n4:4569": b}
	for _, c := range []struct {
		seen map[string]*quorum.Donation
		own  string
		want *quorum.Donation
	}{
		{both, "10.0.0.3", b},      // the default port
		{both, "10.0.0.2:4444", a}, // two SSTs at once: the one to this node
		{both, "", nil},            // two, and no address to tell them apart
		{both, "AUTO", nil},
		{map[string]*quorum.Donation{"n1:4569": a}, "", a}, // the only one
		{map[string]*quorum.Donation{"n1:4569": a}, "10.0.0.9:4444", a},
		{nil, "10.0.0.2", nil},
	} {
		if _, got := pickDonation(c.seen, c.own); got != c.want {
			t.Errorf("pickDonation(%d donations, %q) = %+v, want %+v", len(c.seen), c.own, got, c.want)
		}
	}
}

// TestDonorMeasure: what an SST's processes read, from /proc/PID/io, and
// never less than before once a process ended.
func TestDonorMeasure(t *testing.T) {
	f := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(f, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// "cat" is no data reader the measure knows: the busiest process of
	// the SST stands for it.
	cmd := exec.Command("sh", "-c", "cat \"$0\" >/dev/null; exec sleep 5", f)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	d := &procReads{names: dataReaders, busiest: true}
	var got int64
	for end := time.Now().Add(5 * time.Second); got < 3<<20; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("measured %d bytes, want the 3 MiB cat read", got)
		}
		got = d.measure(append(descendants(cmd.Process.Pid), procStat{PID: cmd.Process.Pid}))
	}
	if again := d.measure(nil); again != got {
		t.Errorf("after the processes ended: %d, want %d still", again, got)
	}
	// A joiner's count knows its readers by name: the shell and cat are
	// none of them.
	j := &procReads{names: streamReaders}
	if n := j.measure(append(descendants(cmd.Process.Pid), procStat{PID: cmd.Process.Pid})); n != 0 {
		t.Errorf("joiner's stream count %d from processes that read no stream", n)
	}
}

// stockStall is how long the stock-sst fake stalls; stallSlack, how late
// a loaded machine may see the bytes written before it.
const (
	stockStall = 3 * time.Second
	stallSlack = 1500 * time.Millisecond
)

// TestStockSSTKeepaliveFollowsDisk: a method that reports nothing (a
// wsrep_sst_rsync process, bytes landing in the datadir) gets extensions
// while bytes land and none while they stall; mariadbd's SST monitor
// extension is not relayed, and STATUS tells the method, bytes and rate.
func TestStockSSTKeepaliveFollowsDisk(t *testing.T) {
	n := startFake(t, "stock-sst", nil)
	n.waitReady()
	window := "EXTEND_TIMEOUT_USEC=400000"
	stalled, err := os.Stat(filepath.Join(n.dir, "stalled"))
	if err != nil {
		t.Fatal(err)
	}
	// Extensions for the last bytes may come late when the machine is
	// loaded (a sample taken after the stall began sees them), but never
	// past stallSlack, and none in the rest of the stall.
	var before, during int
	from, to := stalled.ModTime().Add(stallSlack), stalled.ModTime().Add(stockStall-50*time.Millisecond)
	for _, m := range n.rec.with(window) {
		switch {
		case m.at.Before(stalled.ModTime()):
			before++
		case m.at.After(from) && m.at.Before(to):
			during++
			t.Errorf("extension at +%v into a stall", m.at.Sub(stalled.ModTime()))
		}
	}
	if before < 2 {
		t.Errorf("%d extensions while bytes landed, want >= 2", before)
	}
	if len(n.rec.with("EXTEND_TIMEOUT_USEC=60000000")) != 0 {
		t.Error("the SST monitor's blind extension was relayed")
	}
	rated := regexp.MustCompile(`^receiving SST by rsync [1-8] MiB [\d.]+ MB/s$`)
	if !slices.ContainsFunc(n.rec.statuses(), rated.MatchString) {
		t.Errorf("no STATUS with the method, bytes and a rate: %q", n.rec.statuses())
	}
	if slices.ContainsFunc(n.rec.statuses(), func(s string) bool { return strings.HasPrefix(s, "IST") }) {
		t.Errorf("an SST shown as IST: %q", n.rec.statuses())
	}
}

// TestStockSSTMonitorFloor: when the supervisor can read nothing of the
// node's directories, mariadbd's SST-monitor extension is relayed, the
// floor, and the log says why.
func TestStockSSTMonitorFloor(t *testing.T) {
	rec := logtest.NewRecorder()
	n := startFake(t, "stock-sst-unmeasurable", func(c *Config, _ string) { c.Log = rec.Logger() })
	// The fake sends the monitor's message once the supervisor knows it
	// cannot measure: before that, the message is not relayed, rightly.
	go func() {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if slices.ContainsFunc(rec.Messages(), func(m string) bool { return strings.Contains(m, "SST progress cannot be measured") }) {
				os.WriteFile(filepath.Join(n.dir, "unmeasurable-seen"), nil, 0o644)
				return
			}
		}
	}()
	n.waitReady()
	if len(n.rec.with("EXTEND_TIMEOUT_USEC=60000000")) != 1 {
		t.Errorf("the SST monitor's extension, the floor, was not relayed once")
	}
	for _, want := range []string{"SST progress cannot be measured", "as the floor"} {
		if !slices.ContainsFunc(rec.Messages(), func(m string) bool { return strings.Contains(m, want) }) {
			t.Errorf("log lacks %q: %q", want, rec.Messages())
		}
	}
}
