package supervisor

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// statuses are the STATUS= lines sent, in order.
func (r *recorder) statuses() []string { return statusLines(r.all()) }

func statusLines(msgs []recorded) []string {
	var out []string
	for _, m := range msgs {
		for _, l := range strings.Split(m.s, "\n") {
			if s, ok := strings.CutPrefix(l, "STATUS="); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// TestSSTRateFromEventTimes: progress events sent 200 ms apart at 100 MB/s
// but read in one burst give a STATUS rate near 100 MB/s, as the events'
// own times tell, not thousands of MB/s.
func TestSSTRateFromEventTimes(t *testing.T) {
	n := startFake(t, "sst-burst", nil)
	n.waitReady()
	re := regexp.MustCompile(` (\d+) MB/s`)
	rated := 0
	for _, s := range n.rec.statuses() {
		m := re.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		rated++
		if r, _ := strconv.Atoi(m[1]); r < 80 || r > 120 {
			t.Errorf("STATUS=%s: rate %d MB/s, want about 100", s, r)
		}
	}
	if rated == 0 {
		t.Errorf("no STATUS with a rate: %q", n.rec.statuses())
	}
}

// TestSSTPhaseNeverBack: a receiving tick read after "moving" does not take
// STATUS back to receiving.
func TestSSTPhaseNeverBack(t *testing.T) {
	n := startFake(t, "sst-late", nil)
	n.waitReady()
	if _, err := os.Stat(filepath.Join(n.dir, "late-sent")); err != nil {
		t.Fatal("the fake did not send its late tick")
	}
	moved := false
	for _, s := range n.rec.statuses() {
		switch {
		case strings.HasPrefix(s, "moving"):
			moved = true
		case moved && strings.HasPrefix(s, "receiving"):
			t.Errorf("STATUS=%s after moving", s)
		}
	}
	if !moved {
		t.Errorf("no STATUS=moving: %q", n.rec.statuses())
	}
}

// waitFile waits for the fake to create name.
func (n *fakeNode) waitFile(name string) {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(n.dir, name)); err == nil {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("the fake made no %s", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
