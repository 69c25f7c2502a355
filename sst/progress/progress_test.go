package progress

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen is a Listener and a Client of it, closed with the test.
func listen(t *testing.T) (*Listener, *Client) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return l, c
}

func TestClientListener(t *testing.T) {
	l, c := listen(t)
	c.Report(Event{Role: "joiner", Phase: PhaseReceiving, Done: 10, Total: 100})
	select {
	case e := <-l.Events():
		if e.Role != "joiner" || e.Done != 10 || e.Total != 100 || e.PID == 0 || e.Time.IsZero() {
			t.Fatalf("got %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
}

// TestListenerSync: after Sync, every event sent before it is in Events.
func TestListenerSync(t *testing.T) {
	l, c := listen(t)
	for round := range 20 {
		for i := range 10 {
			c.Report(Event{Phase: PhaseReceiving, Done: int64(i)})
		}
		c.Report(Event{Phase: PhaseFailed, Err: "last"})
		if err := l.Sync(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		var got []Event
		for len(l.Events()) > 0 {
			got = append(got, <-l.Events())
		}
		if len(got) != 11 || got[10].Err != "last" {
			t.Fatalf("round %d: %d events after Sync, last %+v; want 11, the failure last", round, len(got), got[len(got)-1])
		}
	}
}

func TestFromEnvWithoutSupervisor(t *testing.T) {
	t.Setenv(EnvSocket, filepath.Join(t.TempDir(), "absent.sock"))
	FromEnv().Report(Event{Phase: PhaseSending}) // must neither block nor panic
}

func TestMeter(t *testing.T) {
	var m Meter
	t0 := time.Unix(0, 0)
	gb := int64(1 << 30)
	if !m.Observe(Event{Phase: PhaseReceiving, Done: 0, Total: 4 * gb}, t0) {
		t.Fatal("first event should count as movement")
	}
	if !m.Observe(Event{Phase: PhaseReceiving, Done: gb, Total: 4 * gb}, t0.Add(time.Second)) {
		t.Fatal("advance not seen")
	}
	if m.Observe(Event{Phase: PhaseReceiving, Done: gb, Total: 4 * gb}, t0.Add(2*time.Second)) {
		t.Fatal("stall seen as advance")
	}
	// 1 GiB over the 2 s the events span: the stall counts.
	eta, ok := m.ETA()
	if !ok || eta != 6*time.Second {
		t.Fatalf("eta %v %v", eta, ok)
	}
	if got, want := m.String(), "receiving SST 25% 1.0/4.0 GiB 537 MB/s ETA 6s"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

// TestMeterBurst: events sent every 200 ms at 100 MB/s but read in bursts
// of ten (a busy supervisor) give 100 MB/s, not the spike of 2 GB in no
// time: the meter goes by the events' own times.
func TestMeterBurst(t *testing.T) {
	var m Meter
	t0 := time.Unix(1000, 0)
	const rate = 100e6
	for i := range 50 {
		sent := t0.Add(time.Duration(i) * 200 * time.Millisecond)
		read := t0.Add(time.Duration(i/10+1) * 2 * time.Second) // after the burst's last
		m.Observe(Event{Phase: PhaseReceiving, Done: int64(float64(i) * 0.2 * rate), Total: 2e9, Time: sent}, read)
		if r, ok := m.Rate(); ok && (r < 0.99*rate || r > 1.01*rate) {
			t.Fatalf("event %d: rate %.0f MB/s, want 100", i, r/1e6)
		}
	}
	if !strings.Contains(m.String(), " 100 MB/s ETA ") {
		t.Errorf("String() = %q", m.String())
	}
}

// TestMeterTwoCounters: events of one transfer from two counters a little
// apart (native-backup's stream bytes and extracted bytes) keep the rate
// and the bytes shown going, where a reset at each lower count showed no
// rate, or a spike right after.
func TestMeterTwoCounters(t *testing.T) {
	var m Meter
	t0 := time.Unix(1000, 0)
	for i := range 40 {
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		done := int64(i) * 5e6 // 50 MB/s
		if i%2 == 1 {
			done -= 3e6 // the other counter, behind
		}
		m.Observe(Event{Phase: PhaseReceiving, PID: 9, Done: done, Total: 1e9, Time: at}, at)
		if d := m.Last().Done; i > 0 && d < int64(i-1)*5e6 {
			t.Fatalf("event %d: shown %d bytes, went back", i, d)
		}
	}
	r, ok := m.Rate()
	if !ok || r < 45e6 || r > 55e6 {
		t.Fatalf("rate %.1f MB/s %v, want 50", r/1e6, ok)
	}
}

// Events without a time, read together, tell no rate rather than a spike.
func TestMeterBurstUnstamped(t *testing.T) {
	var m Meter
	now := time.Unix(1000, 0)
	for i := range 10 {
		m.Observe(Event{Phase: PhaseReceiving, Done: int64(i) << 20, Total: 1 << 30}, now.Add(time.Duration(i)*time.Millisecond))
	}
	if r, ok := m.Rate(); ok {
		t.Fatalf("rate %.0f MB/s from events read within 10 ms", r/1e6)
	}
	if _, ok := m.ETA(); ok || strings.Contains(m.String(), "MB/s") {
		t.Errorf("String() = %q, want no rate", m.String())
	}
	// Stamps out of order never give a negative span or rate.
	m.Observe(Event{Phase: PhaseReceiving, Done: 20 << 20, Total: 1 << 30, Time: now.Add(-time.Minute)}, now.Add(2*time.Second))
	if r, ok := m.Rate(); ok && r < 0 {
		t.Errorf("negative rate %v", r)
	}
}

// The rate follows the last few seconds, not the whole transfer.
func TestMeterWindow(t *testing.T) {
	var m Meter
	t0 := time.Unix(1000, 0)
	var done int64
	at := t0
	step := func(d time.Duration, rate float64) {
		for end := at.Add(d); at.Before(end); {
			at = at.Add(200 * time.Millisecond)
			done += int64(rate * 0.2)
			m.Observe(Event{Phase: PhaseReceiving, Done: done, Total: 10e9, Time: at}, at)
		}
	}
	step(20*time.Second, 300e6)
	step(10*time.Second, 30e6)
	r, ok := m.Rate()
	if !ok || r < 29e6 || r > 31e6 {
		t.Fatalf("rate %.1f MB/s %v after 10 s at 30 MB/s, want 30", r/1e6, ok)
	}
	if len(m.samples) > int(rateWindow/(200*time.Millisecond))+2 {
		t.Errorf("%d samples kept", len(m.samples))
	}
	// A new phase starts a new measure.
	m.Observe(Event{Phase: PhaseMoving, Time: at}, at)
	if _, ok := m.Rate(); ok {
		t.Error("rate carried into the next phase")
	}
}

// TestMeterLate: an event of a phase its SST already left is late; a new
// SST (another process, another role) is not.
func TestMeterLate(t *testing.T) {
	var m Meter
	now := time.Unix(1000, 0)
	j := func(phase string, pid int) Event {
		return Event{Role: "joiner", Phase: phase, PID: pid, Done: 5 << 20, Time: now}
	}
	if m.Late(j(PhaseReceiving, 7)) {
		t.Fatal("first event late")
	}
	for _, p := range []string{PhaseWaiting, PhaseReceiving, PhaseVerifying, PhaseMoving} {
		m.Observe(j(p, 7), now)
	}
	for _, tc := range []struct {
		e    Event
		want bool
	}{
		{j(PhaseReceiving, 7), true},
		{j(PhaseWaiting, 7), true},
		{j(PhaseVerifying, 7), true},
		{j(PhaseMoving, 7), false},
		{j(PhaseDone, 7), false},
		{j(PhaseFailed, 7), false},
		{j(PhaseReceiving, 8), false},
		{Event{Role: "donor", Phase: PhaseSending, PID: 7}, false},
		{j("some-new-phase", 7), false},
	} {
		if got := m.Late(tc.e); got != tc.want {
			t.Errorf("after moving, Late(%s pid %d %s) = %v, want %v", tc.e.Role, tc.e.PID, tc.e.Phase, got, tc.want)
		}
	}
	m.Observe(j(PhaseDone, 7), now)
	if !m.Late(j(PhaseReceiving, 7)) {
		t.Error("a tick of the same SST after done is not late")
	}
	var u Meter // events without a PID: after done, the next SST begins
	u.Observe(j(PhaseDone, 0), now)
	if u.Late(j(PhaseWaiting, 0)) {
		t.Error("without PIDs, a new SST after done is late")
	}
}

func TestMeterSmallAndOvershoot(t *testing.T) {
	var m Meter
	m.Observe(Event{Phase: PhaseReceiving, Done: 60 << 20, Total: 120 << 20}, time.Unix(0, 0))
	if got, want := m.String(), "receiving SST 50% 60/120 MiB"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	var o Meter
	o.Observe(Event{Phase: PhaseReceiving, Done: 3 << 30, Total: 2 << 30}, time.Unix(0, 0))
	if got, want := o.String(), "receiving SST 3.0 GiB"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

// TestMeterSlowSmall: a slow transfer with no total, as a stock method's
// measured one starts: KiB below 1 MiB, and a rate below 1 MB/s with a
// decimal rather than "0 MB/s".
func TestMeterSlowSmall(t *testing.T) {
	var m Meter
	t0 := time.Unix(1000, 0)
	for i := range 7 {
		at := t0.Add(time.Duration(i) * 500 * time.Millisecond)
		m.Observe(Event{Role: "joiner", Phase: PhaseReceiving, Done: int64(i) * 100e3, Time: at}, at)
	}
	if got, want := m.String(), "receiving SST 586 KiB 0.2 MB/s"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := m.Detail(), " 586 KiB 0.2 MB/s"; got != want {
		t.Errorf("Detail() = %q, want %q", got, want)
	}
}

// TestMeterNoEndlessETA: a transfer barely moving gives no ETA of months.
func TestMeterNoEndlessETA(t *testing.T) {
	var m Meter
	t0 := time.Unix(1000, 0)
	m.Observe(Event{Role: "joiner", Phase: PhaseReceiving, Done: 0, Total: 4 << 30, Time: t0}, t0)
	m.Observe(Event{Role: "joiner", Phase: PhaseReceiving, Done: 10, Total: 4 << 30, Time: t0.Add(2 * time.Second)}, t0.Add(2*time.Second))
	if eta, ok := m.ETA(); ok {
		t.Errorf("ETA %s at 5 bytes/s", eta)
	}
}
