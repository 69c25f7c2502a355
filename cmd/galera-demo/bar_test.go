package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
)

func TestParseStatus(t *testing.T) {
	for _, c := range []struct {
		in   string
		ok   bool
		want sstStatus
	}{
		{"receiving SST 45% 115/256 MiB 38 MB/s ETA 4s", true,
			sstStatus{Phase: "receiving", Percent: 45, Done: 115 << 20, Total: 256 << 20}},
		{"receiving SST 45% 2.0/4.5 GiB 310 MB/s ETA 1m8s", true,
			sstStatus{Phase: "receiving", Percent: 45, Done: 2 << 30, Total: 4.5 * (1 << 30)}},
		{"receiving SST 0% 0/198 MiB", true, sstStatus{Phase: "receiving", Percent: 0, Total: 198 << 20}},
		{"receiving SST 300 MiB 40 MB/s", true, sstStatus{Phase: "receiving", Percent: -1, Done: 300 << 20}},
		{"waiting 0% 0/198 MiB", true, sstStatus{Phase: "waiting", Percent: 0, Total: 198 << 20}},
		{"waiting", true, sstStatus{Phase: "waiting", Percent: -1}},
		{"preparing", true, sstStatus{Phase: "preparing", Percent: -1}},
		{"donor, sending SST 10% 20/200 MiB", true, sstStatus{Phase: "sending", Percent: 10, Done: 20 << 20, Total: 200 << 20}},
		{"receiving SST", true, sstStatus{Phase: "receiving", Percent: -1}},
		{"receiving SST by native-backup", true, sstStatus{Phase: "receiving", Percent: -1}},
		{"donor: sending SST by native-copy to 127.0.0.1:4444 10% 20/200 MiB 38 MB/s", true, sstStatus{Phase: "sending", Percent: 10, Done: 20 << 20, Total: 200 << 20}},
		{"receiving SST by rsync 512 KiB 0.4 MB/s", true, sstStatus{Phase: "receiving", Percent: -1, Done: 512 << 10}},
		{"synced", false, sstStatus{}},
		{"joined, catching up", false, sstStatus{}},
		{"starting: InnoDB: Buffer pool(s) load completed", false, sstStatus{}},
		{"done", false, sstStatus{}},
		{"receivingX", false, sstStatus{}},
		{"", false, sstStatus{}},
	} {
		got, ok := parseStatus(c.in)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("parseStatus(%q) = %+v, %v; want %+v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{"receiving SST 45% 115/256 MiB 38 MB/s ETA 4s", "waiting 0% 0/198 MiB", "preparing", "synced",
		"receiving SST 99999999999999999999% 1e400/2 GiB", "sending SST 1 GiB ETA -5s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		s, ok := parseStatus(line)
		if !ok {
			return
		}
		if s.Percent < -1 || s.Percent > 100 || s.Done < 0 || s.Total < 0 || s.MBps < 0 || s.ETA < 0 {
			t.Errorf("parseStatus(%q) = %+v", line, s)
		}
		// Whatever it parsed draws one line of the bar.
		if l := renderBar("node3 SST", s, time.Second); strings.Contains(l, "\n") || !strings.Contains(l, "[") {
			t.Errorf("renderBar of %q = %q", line, l)
		}
	})
}

// statusRun is node3's STATUS= lines from a real native-backup join
// (16 MiB), with the times they came.
var statusRun = []struct {
	at   float64 // s
	line string
}{
	{0.0, "starting"},
	{1.1, "waiting"},
	{1.2, "waiting 0% 0/162 MiB"},
	{1.3, "receiving SST 0% 0/162 MiB"},
	{2.3, "receiving SST 41% 67/162 MiB 70 MB/s ETA 1s"},
	{3.3, "receiving SST 92% 149/162 MiB 1285 MB/s ETA 0s"},
	{3.9, "preparing"},
	{4.1, "moving"},
	{4.2, "done"},
	{4.3, "starting"},
	{4.9, "IST"},
	{5.0, "synced"},
}

func drawRun(tty bool) string {
	var out bytes.Buffer
	t0 := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	p := &barPrinter{w: &out, tty: tty, every: 2 * time.Second, label: "node3 SST"}
	for _, s := range statusRun {
		st, ok := parseStatus(s.line)
		if !ok {
			p.finish()
			continue
		}
		p.update(st, t0.Add(time.Duration(s.at*float64(time.Second))))
	}
	p.finish()
	return out.String()
}

func TestBarTerminal(t *testing.T) {
	got := drawRun(true)
	testutil.Golden(t, filepath.Join("testdata", "bar-tty.golden"), []byte(got))
	if n := strings.Count(got, "\r"); n != 7 {
		t.Errorf("%d redraws, want one per SST line (7)", n)
	}
	if strings.Count(got, "\n") != 1 {
		t.Errorf("the bar should end with one newline:\n%q", got)
	}
}

func TestBarLines(t *testing.T) {
	got := drawRun(false)
	testutil.Golden(t, filepath.Join("testdata", "bar-lines.golden"), []byte(got))
	if strings.Contains(got, "\r") {
		t.Error("\\r written when stdout is not a terminal")
	}
}

// A redrawn line must fit 80 columns, or the terminal wraps it and \r
// redraws only its tail.
func TestBarFits80Columns(t *testing.T) {
	for _, s := range []sstStatus{
		{Phase: "receiving", Percent: 45, Done: 2 << 30, Total: 450 << 30, MBps: 1234, ETA: 59*time.Minute + 59*time.Second, HasETA: true},
		{Phase: "receiving", Percent: -1, Done: 999 << 30, MBps: 99999},
		{Phase: "preparing", Percent: -1},
		{Phase: "waiting", Percent: 0, Total: 100 << 30},
	} {
		if l := renderBar("node3 SST", s, 999*time.Second); len([]rune(l)) > 80 {
			t.Errorf("%d columns: %q", len([]rune(l)), l)
		}
	}
}
