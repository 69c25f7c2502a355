package logging

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

func TestSyslog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h, err := NewSyslog(path, "galera-wsrep-sst-joiner", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l := slog.New(h).With(slog.String("sst_role", "joiner"))
	l.Info("started\nsecond line")
	l.Warn("slow")
	l.Error("failed")
	l.Debug("not sent")
	// daemon is facility 3: <3*8+severity>.
	l.Error("failed", "error", "disk full\nat x")
	// The attributes follow the last line, a value on one line.
	want := []string{`^<30>.* galera-wsrep-sst-joiner\[\d+\]: started\n?$`, `^<30>.* galera-wsrep-sst-joiner\[\d+\]: second line sst_role=joiner\n?$`,
		`^<28>.* galera-wsrep-sst-joiner\[\d+\]: slow sst_role=joiner\n?$`, `^<27>.* galera-wsrep-sst-joiner\[\d+\]: failed sst_role=joiner\n?$`,
		`^<27>.* galera-wsrep-sst-joiner\[\d+\]: failed sst_role=joiner error="disk full\\nat x"\n?$`}
	buf := make([]byte, 4096)
	for _, w := range want {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("want %s: %v", w, err)
		}
		if !regexp.MustCompile(w).Match(buf[:n]) {
			t.Errorf("got %q, want %s", buf[:n], w)
		}
	}
	if _, err := NewSyslog(filepath.Join(t.TempDir(), "none"), "x", nil); err == nil {
		t.Error("no daemon: no error")
	}
}

func TestTee(t *testing.T) {
	a, b := &countHandler{level: slog.LevelInfo}, &countHandler{level: slog.LevelWarn}
	l := slog.New(Tee(a, b)).With(slog.String("k", "v")).WithGroup("g")
	l.Info("one")
	l.Warn("two")
	l.Debug("none")
	if a.n != 2 || b.n != 1 {
		t.Errorf("handled %d and %d records, want 2 and 1", a.n, b.n)
	}
}

type countHandler struct {
	level slog.Level
	n     int
}

func (h *countHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *countHandler) Handle(context.Context, slog.Record) error    { h.n++; return nil }
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *countHandler) WithGroup(string) slog.Handler                { return h }
