package notify

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
)

// fakeSystemd is a unixgram listener standing in for systemd's socket.
type fakeSystemd struct {
	conn *net.UnixConn
	path string
}

func newFakeSystemd(t *testing.T) *fakeSystemd {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &fakeSystemd{conn: c, path: path}
}

func (f *fakeSystemd) next(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 4096)
	f.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := f.conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestSocketSends(t *testing.T) {
	f := newFakeSystemd(t)
	s := NewSocket(f.path)
	defer s.Close()
	for _, want := range []string{"READY=1\nSTATUS=synced", ExtendTimeout(90 * time.Second)} {
		if err := s.Notify(want); err != nil {
			t.Fatal(err)
		}
		if got := f.next(t); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if got := ExtendTimeout(1500 * time.Millisecond); got != "EXTEND_TIMEOUT_USEC=1500000" {
		t.Errorf("ExtendTimeout = %q", got)
	}
}

func TestSocketAbstract(t *testing.T) {
	name := "@gs-notify-test-" + time.Now().Format("150405.000000000")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Skipf("abstract sockets: %v", err)
	}
	defer c.Close()
	if err := NewSocket(name).Notify("WATCHDOG=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "WATCHDOG=1" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
}

func TestSocketMissing(t *testing.T) {
	err := NewSocket(filepath.Join(t.TempDir(), "none")).Notify("READY=1")
	if err == nil {
		t.Fatal("no error for a missing socket")
	}
}

func TestParseMessage(t *testing.T) {
	m := ParseMessage([]byte("STATUS=WSREP state transfer (role joiner) ongoing...\nEXTEND_TIMEOUT_USEC=60000000\ngarbage\n=x\nSTATUS=a=b\n"))
	if len(m.Fields) != 3 {
		t.Fatalf("fields %+v", m.Fields)
	}
	if v, _ := m.Get("STATUS"); v != "a=b" {
		t.Errorf("last STATUS = %q", v)
	}
	if _, ok := m.Get("READY"); ok {
		t.Error("READY found")
	}
	if got := m.String(); got != "STATUS=WSREP state transfer (role joiner) ongoing...\nEXTEND_TIMEOUT_USEC=60000000\nSTATUS=a=b\n" {
		t.Errorf("String = %q", got)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		in   string
		want ChildMessage
	}{
		{"READY=1\nSTATUS=Taking your SQL requests now...\n",
			ChildMessage{Ready: true, Status: "Taking your SQL requests now..."}},
		// The SST monitor's extension is not progress-aware: not to be
		// relayed, only kept as the floor.
		{"STATUS=WSREP state transfer (role joiner) ongoing...\nEXTEND_TIMEOUT_USEC=60000000\n",
			ChildMessage{Status: "WSREP state transfer (role joiner) ongoing...", SSTMonitor: true, MonitorExtend: time.Minute}},
		{"STATUS=WSREP state transfer (role donor) completed.\n",
			ChildMessage{Status: "WSREP state transfer (role donor) completed.", SSTMonitor: true}},
		// InnoDB's are relayed.
		{"EXTEND_TIMEOUT_USEC=180000000\nSTATUS=InnoDB: to recover: 12345 pages\n",
			ChildMessage{Status: "InnoDB: to recover: 12345 pages", Extend: 180 * time.Second}},
		{"EXTEND_TIMEOUT_USEC=bogus\n", ChildMessage{}},
		{"STOPPING=1\nSTATUS=Shutdown in progress\n", ChildMessage{Stopping: true, Status: "Shutdown in progress"}},
	}
	for _, tt := range tests {
		got := Classify(ParseMessage([]byte(tt.in)))
		if got != tt.want {
			t.Errorf("Classify(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestListenerReceives(t *testing.T) {
	path := filepath.Join(t.TempDir(), "child.sock")
	l, err := Listen(path, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket mode %v, %v", fi.Mode(), err)
	}
	if err := NewSocket(path).Notify("READY=1\nSTATUS=x"); err != nil {
		t.Fatal(err)
	}
	m, err := l.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Get("STATUS"); v != "x" || m.PID != os.Getpid() {
		t.Errorf("got %+v, want STATUS x from pid %d", m, os.Getpid())
	}
	l.Close()
	if _, err := l.Receive(); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket not removed: %v", err)
	}
}

func TestKeepalive(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	k := Keepalive{Window: 20 * time.Second}
	if _, ok := k.Deadline(); ok {
		t.Fatal("deadline before any extension")
	}
	// Progress every second: one extension every Window/4 = 5 s.
	var sent []float64
	for s := 0.0; s <= 30; s++ {
		if k.Advanced(at(s)) {
			sent = append(sent, s)
		}
	}
	want := []float64{0, 5, 10, 15, 20, 25, 30}
	if len(sent) != len(want) {
		t.Fatalf("sent at %v, want %v", sent, want)
	}
	for i := range want {
		if sent[i] != want[i] {
			t.Fatalf("sent at %v, want %v", sent, want)
		}
	}
	// Then the transfer stalls: nothing more is sent, and the deadline is
	// at most Window after the last progress.
	d, _ := k.Deadline()
	if d != at(50) {
		t.Errorf("deadline %v, want %v", d.Sub(t0), 50*time.Second)
	}
	// Progress resumes after a gap shorter than the window: sent at once.
	if !k.Advanced(at(44)) {
		t.Error("no extension when progress resumed")
	}
	k.Reset()
	if !k.Advanced(at(44.1)) {
		t.Error("no extension after Reset")
	}
	if (&Keepalive{}).Advanced(t0) {
		t.Error("a zero window extends")
	}
}

type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) Notify(s string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func TestWatchdogOnlyWhileHealthy(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Watchdog(ctx, rec, 40*time.Millisecond, func(context.Context) error {
			if healthy.Load() {
				return nil
			}
			return errors.New("sick")
		}, logtest.New(t))
		close(done)
	}()
	time.Sleep(200 * time.Millisecond)
	n1 := rec.count()
	if n1 < 3 {
		t.Fatalf("%d pings in 200ms at 20ms period", n1)
	}
	healthy.Store(false)
	time.Sleep(60 * time.Millisecond) // let an in-flight tick finish
	n2 := rec.count()
	time.Sleep(200 * time.Millisecond)
	if n3 := rec.count(); n3 != n2 {
		t.Fatalf("pings while unhealthy: %d -> %d", n2, n3)
	}
	healthy.Store(true)
	time.Sleep(100 * time.Millisecond)
	if rec.count() == n2 {
		t.Fatal("pings did not resume")
	}
	cancel()
	<-done
	for _, s := range rec.got {
		if s != "WATCHDOG=1" {
			t.Errorf("sent %q", s)
		}
	}
}
