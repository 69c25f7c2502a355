package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func TestTextSST(t *testing.T) {
	var b bytes.Buffer
	at := time.Date(2026, 11, 21, 11, 10, 18, 250e6, time.FixedZone("x", 3600))
	l := slog.New(NewText(&b, TextOptions{Style: SST, Now: func() time.Time { return at }})).
		With(slog.String("sst_role", "joiner"))
	l.Info("received 3 files\nfrom 127.0.0.1", slog.Int64("sst_bytes", 3))
	l.Warn("slow disk")
	l.Error("disk full", "exit", 28, "path", "/var/lib/mysql/.sst staging")
	l.Debug("not shown")
	want := "WSREP_SST: [INFO] received 3 files (20261121 10:10:18.250)\n" +
		"WSREP_SST: [INFO] from 127.0.0.1 sst_role=joiner sst_bytes=3 (20261121 10:10:18.250)\n" +
		"WSREP_SST: [WARNING] slow disk sst_role=joiner (20261121 10:10:18.250)\n" +
		"WSREP_SST: [ERROR] disk full sst_role=joiner exit=28 path=\"/var/lib/mysql/.sst staging\" (20261121 10:10:18.250)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestTextPlain(t *testing.T) {
	var b bytes.Buffer
	l := slog.New(NewText(&b, TextOptions{Prefix: "galera-supervisor: ", Level: slog.LevelDebug})).WithGroup("g")
	l.Debug("phase: synced\n", slog.String("node_state", "synced"))
	l.Warn("watchdog: health check failed")
	l.Error("SST joiner failed\nsecond line", "error", errors.New("EPIPE"))
	want := "galera-supervisor: phase: synced g.node_state=synced\n" +
		"galera-supervisor: WARNING: watchdog: health check failed\n" +
		"galera-supervisor: ERROR: SST joiner failed\n" +
		"galera-supervisor: ERROR: second line g.error=EPIPE\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// TestTextAttrs: attributes read as slog's TextHandler writes them, and no
// value breaks the line.
func TestTextAttrs(t *testing.T) {
	at := time.Date(2026, 11, 21, 11, 10, 18, 250e6, time.UTC)
	for _, c := range []struct {
		name string
		log  func(l *slog.Logger)
		want string
	}{
		{"none", func(l *slog.Logger) { l.Info("started mariadbd") }, "started mariadbd"},
		{"kinds", func(l *slog.Logger) {
			l.Info("m", "s", "word", "i", -3, "u", uint64(7), "f", 1.5, "b", true, "d", 1500*time.Millisecond, "t", at)
		}, "m s=word i=-3 u=7 f=1.5 b=true d=1.5s t=2026-11-21T11:10:18.250Z"},
		{"error", func(l *slog.Logger) { l.Warn("m", "error", errors.New("open grastate.dat: no such file")) },
			`WARNING: m error="open grastate.dat: no such file"`},
		{"nil error", func(l *slog.Logger) { l.Info("m", "error", error(nil)) }, "m error=<nil>"},
		{"quoting", func(l *slog.Logger) {
			l.Info("m", "empty", "", "eq", "a=b", "q", `say "hi"`, "nl", "one\ntwo", "tab", "a\tb", "bad", "\xff", "key with space", 1)
		}, `m empty="" eq="a=b" q="say \"hi\"" nl="one\ntwo" tab="a\tb" bad="\xff" "key with space"=1`},
		{"unicode", func(l *slog.Logger) { l.Info("m", "path", "/srv/données") }, "m path=/srv/données"},
		{"groups", func(l *slog.Logger) {
			l.With("a", 1).WithGroup("peer").With("addr", "10.0.0.2").WithGroup("tls").Info("m", "mode", "VERIFY_CA",
				slog.Group("g", "x", 1), slog.Group("", "inline", 2), slog.Group("empty"))
		}, "m a=1 peer.addr=10.0.0.2 peer.tls.mode=VERIFY_CA peer.tls.g.x=1 peer.tls.inline=2"},
		{"empty attr", func(l *slog.Logger) { l.Info("m", slog.Attr{}, "k", "v") }, "m k=v"},
		{"message id", func(l *slog.Logger) { l.Info("SST started", "message_id", MessageSSTStarted, "sst_peer", "n2") },
			"SST started sst_peer=n2"},
		{"no message", func(l *slog.Logger) { l.Info("", "k", "v") }, "k=v"},
		{"valuer", func(l *slog.Logger) { l.Info("m", "v", lazy("resolved")) }, "m v=resolved"},
	} {
		var b bytes.Buffer
		c.log(slog.New(NewText(&b, TextOptions{})))
		if got := b.String(); got != c.want+"\n" {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want+"\n")
		}
	}
}

type lazy string

func (l lazy) LogValue() slog.Value { return slog.StringValue(string(l)) }

// FuzzText: whatever the message and attribute, the SST style writes one
// well-formed WSREP_SST line per line of the message and nothing else.
func FuzzText(f *testing.F) {
	f.Add("received\nfrom x", "k", "v\nw")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, msg, key, value string) {
		var b bytes.Buffer
		slog.New(NewText(&b, TextOptions{Style: SST, Now: func() time.Time { return time.Unix(0, 0) }})).
			Info(msg, key, value)
		lines := bytes.Split(bytes.TrimSuffix(b.Bytes(), []byte("\n")), []byte("\n"))
		if want := bytes.Count(bytes.TrimRight([]byte(msg), "\n"), []byte("\n")) + 1; len(lines) != want {
			t.Fatalf("%d lines, want %d: %q", len(lines), want, b.String())
		}
		for _, l := range lines {
			if !bytes.HasPrefix(l, []byte("WSREP_SST: [INFO] ")) || !bytes.HasSuffix(l, []byte(" (19700101 00:00:00.000)")) {
				t.Errorf("line %q", l)
			}
		}
	})
}

func TestParseAttrs(t *testing.T) {
	var b bytes.Buffer
	at := time.Date(2026, 11, 21, 11, 10, 18, 250e6, time.UTC)
	slog.New(NewText(&b, TextOptions{Style: SST, Now: func() time.Time { return at }})).With("sst_role", "joiner").
		Info("received the snapshot", "sst_bytes", 46710928, "sst_peer", "donor 127.0.0.1:53188", "elapsed", 2361*time.Millisecond, "empty", "")
	want := map[string]string{"sst_role": "joiner", "sst_bytes": "46710928", "sst_peer": "donor 127.0.0.1:53188", "elapsed": "2.361s", "empty": ""}
	if got := ParseAttrs(b.String()); !maps.Equal(got, want) {
		t.Errorf("ParseAttrs(%q) = %q, want %q", b.String(), got, want)
	}
}

// FuzzParseAttrs: a value, whatever it holds, reads back as it was logged.
func FuzzParseAttrs(f *testing.F) {
	f.Add("error", "open grastate.dat: no such file", "started mariadbd")
	f.Add("k", "a=b \"c\"\n", "node is ready: READY=1")
	f.Fuzz(func(t *testing.T, key, value, msg string) {
		plain := func(r rune) bool {
			return r == ' ' || r == '=' || r == '"' || r == utf8.RuneError || !unicode.IsPrint(r)
		}
		if key == "" || strings.ContainsFunc(key, plain) || key == MessageIDKey {
			return
		}
		var b bytes.Buffer
		slog.New(NewText(&b, TextOptions{})).Info(strings.ReplaceAll(msg, "=", ""), key, value)
		if got := ParseAttrs(b.String())[key]; got != value {
			t.Errorf("ParseAttrs(%q)[%q] = %q, want %q", b.String(), key, got, value)
		}
	})
}
