package progress

import (
	"path/filepath"
	"testing"
	"time"
)

func TestClientListener(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
	eta, ok := m.ETA()
	if !ok || eta != 3*time.Second {
		t.Fatalf("eta %v %v", eta, ok)
	}
	if got, want := m.String(), "receiving SST 25% 1.0/4.0 GiB 1074 MB/s ETA 3s"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
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
