package logging

import (
	"bytes"
	"log/slog"
	"testing"
	"time"
)

func TestTextSST(t *testing.T) {
	var b bytes.Buffer
	at := time.Date(2026, 11, 21, 11, 10, 18, 250e6, time.FixedZone("x", 3600))
	l := slog.New(NewText(&b, TextOptions{Style: SST, Now: func() time.Time { return at }})).
		With(slog.String("sst_role", "joiner"))
	l.Info("received 3 files\nfrom 127.0.0.1", slog.Int64("sst_bytes", 3))
	l.Warn("slow disk")
	l.Error("disk full (exit 28)")
	l.Debug("not shown")
	want := "WSREP_SST: [INFO] received 3 files (20261121 10:10:18.250)\n" +
		"WSREP_SST: [INFO] from 127.0.0.1 (20261121 10:10:18.250)\n" +
		"WSREP_SST: [WARNING] slow disk (20261121 10:10:18.250)\n" +
		"WSREP_SST: [ERROR] disk full (exit 28) (20261121 10:10:18.250)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestTextPlain(t *testing.T) {
	var b bytes.Buffer
	l := slog.New(NewText(&b, TextOptions{Prefix: "galera-supervisor: ", Level: slog.LevelDebug})).WithGroup("g")
	l.Debug("phase: synced\n", slog.String("node_state", "synced"))
	l.Warn("watchdog: health check failed")
	l.Error("SST joiner failed: EPIPE")
	want := "galera-supervisor: phase: synced\n" +
		"galera-supervisor: WARNING: watchdog: health check failed\n" +
		"galera-supervisor: ERROR: SST joiner failed: EPIPE\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
