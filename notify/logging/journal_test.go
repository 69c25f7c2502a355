package logging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// parseEntry decodes a native journal entry as journald does.
func parseEntry(b []byte) (map[string][]string, error) {
	out := map[string][]string{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, errors.New("entry does not end in a newline")
		}
		line := b[:nl]
		if k, v, ok := bytes.Cut(line, []byte("=")); ok {
			out[string(k)] = append(out[string(k)], string(v))
			b = b[nl+1:]
			continue
		}
		rest := b[nl+1:]
		if len(rest) < 8 {
			return nil, fmt.Errorf("field %q: no length", line)
		}
		n := binary.LittleEndian.Uint64(rest)
		rest = rest[8:]
		if n > uint64(len(rest)) || uint64(len(rest))-n < 1 || rest[n] != '\n' {
			return nil, fmt.Errorf("field %q: bad length %d", line, n)
		}
		out[string(line)] = append(out[string(line)], string(rest[:n]))
		b = rest[n+1:]
	}
	return out, nil
}

// fakeJournald listens like journald and decodes what arrives, datagrams
// and memfds alike.
func fakeJournald(t *testing.T) (string, <-chan map[string][]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socket")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadBuffer(8 << 20)
	t.Cleanup(func() { conn.Close() })
	ch := make(chan map[string][]string, 16)
	go func() {
		buf, oob := make([]byte, 1<<20), make([]byte, 1024)
		for {
			n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
			if err != nil {
				close(ch)
				return
			}
			data := append([]byte(nil), buf[:n]...)
			if oobn > 0 {
				msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
				fds, _ := unix.ParseUnixRights(&msgs[0])
				f := os.NewFile(uintptr(fds[0]), "memfd")
				// The file offset is the sender's; journald maps it from 0.
				data, _ = io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
				f.Close()
			}
			e, err := parseEntry(data)
			if err != nil {
				t.Errorf("journal entry: %v", err)
			}
			ch <- e
		}
	}()
	return path, ch
}

func recv(t *testing.T, ch <-chan map[string][]string) map[string][]string {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no journal entry within 5s")
	}
	return nil
}

func TestJournalFields(t *testing.T) {
	sock, ch := fakeJournald(t)
	l := slog.New(NewJournal(JournalOptions{Socket: sock, Identifier: "wsrep_sst_native-copy"})).
		With(slog.String("sst_role", "joiner"), slog.String("sst-method", "native-copy"))
	l.Error("SST failed\nsecond line", slog.String("message_id", MessageSSTFailed),
		slog.Int64("sst_bytes", 42), slog.Duration("sst_seconds", 1500*time.Millisecond),
		slog.Group("tls", slog.String("mode", "VERIFY_CA")), slog.String("_PID", "1"), slog.String("9lives", "x"),
		slog.String("priority", "high"))
	e := recv(t, ch)
	want := map[string]string{
		"MESSAGE":  "SST failed\nsecond line sst_role=joiner sst-method=native-copy sst_bytes=42 sst_seconds=1.5s tls.mode=VERIFY_CA _PID=1 9lives=x priority=high",
		"PRIORITY": "3", "SYSLOG_IDENTIFIER": "wsrep_sst_native-copy",
		"SST_ROLE": "joiner", "SST_METHOD": "native-copy", "MESSAGE_ID": MessageSSTFailed,
		"SST_BYTES": "42", "SST_SECONDS": "1.5", "TLS_MODE": "VERIFY_CA", "PID": "1", "F_9LIVES": "x", "ATTR_PRIORITY": "high",
	}
	for k, v := range want {
		if got := e[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !strings.HasSuffix(e["CODE_FILE"][0], "journal_test.go") || e["CODE_LINE"][0] == "" {
		t.Errorf("CODE_FILE %q CODE_LINE %q", e["CODE_FILE"], e["CODE_LINE"])
	}
	l.Debug("not sent")
	l.Warn("slow")
	if e := recv(t, ch); e["MESSAGE"][0] != "slow sst_role=joiner sst-method=native-copy" || e["PRIORITY"][0] != "4" {
		t.Errorf("warning entry %q", e)
	}
	l.WithGroup("peer").With(slog.String("addr", "10.0.0.2:4444")).Info("donor chosen", slog.Int("n", 2))
	e = recv(t, ch)
	if e["MESSAGE"][0] != "donor chosen sst_role=joiner sst-method=native-copy peer.addr=10.0.0.2:4444 peer.n=2" ||
		e["PEER_ADDR"][0] != "10.0.0.2:4444" || e["PEER_N"][0] != "2" {
		t.Errorf("grouped entry %q", e)
	}
}

func TestJournalBigEntry(t *testing.T) {
	sock, ch := fakeJournald(t)
	big := strings.Repeat("x", 4<<20) + "\nend"
	slog.New(NewJournal(JournalOptions{Socket: sock})).Info("big", slog.String("dump", big))
	e := recv(t, ch)
	if got := e["DUMP"]; len(got) != 1 || got[0] != big {
		t.Errorf("DUMP of %d bytes arrived as %d bytes", len(big), len(strings.Join(got, "")))
	}
}

func TestJournalFallback(t *testing.T) {
	var b bytes.Buffer
	l := slog.New(NewJournal(JournalOptions{
		Socket:   filepath.Join(t.TempDir(), "none"),
		Fallback: NewText(&b, TextOptions{Prefix: "galera-supervisor: "}),
	}))
	l.Info("journald is gone")
	if b.String() != "galera-supervisor: journald is gone\n" {
		t.Errorf("fallback wrote %q", b.String())
	}
}

func TestIsJournal(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Fstat(2, &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if !IsJournal(os.Stderr) {
		t.Error("stderr's own dev:inode: not the journal")
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	if IsJournal(os.Stderr) {
		t.Error("another inode: taken for the journal")
	}
	t.Setenv("JOURNAL_STREAM", "")
	if IsJournal(os.Stderr) {
		t.Error("no JOURNAL_STREAM: taken for the journal")
	}
}

// FuzzEntry: whatever the keys and values, an entry parses back to them,
// under valid field names.
func FuzzEntry(f *testing.F) {
	f.Add("sst_role", "joiner", "msg")
	f.Add("_a.b-c", "line\nline", "x\n")
	f.Add("", "", "")
	f.Add("message", "not the message", "the message")
	f.Fuzz(func(t *testing.T, key, value, msg string) {
		r := slog.NewRecord(time.Time{}, slog.LevelInfo, msg, 0)
		r.AddAttrs(slog.String(key, value))
		e, err := parseEntry(Entry("id", r, nil, ""))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := e["MESSAGE"], (attrText{}).message(r); len(got) != 1 || got[0] != want {
			t.Errorf("MESSAGE %q, want %q", got, want)
		}
		name := FieldName(key)
		if own[name] {
			name = "ATTR_" + name
		}
		for k := range e {
			if FieldName(k) != k || k[0] == '_' {
				t.Errorf("invalid field name %q", k)
			}
		}
		if vs := e[name]; len(vs) == 0 || vs[len(vs)-1] != value {
			t.Errorf("%s = %q, want %q", name, vs, value)
		}
	})
}

func TestNewPicksJournal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(w.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if _, ok := New(w, "x", TextOptions{}).Handler().(*Journal); !ok {
		t.Error("stderr is the journal: not the journal handler")
	}
	if _, ok := New(os.Stderr, "x", TextOptions{}).Handler().(*Text); !ok {
		t.Error("another stream: not the text handler")
	}
	if _, ok := New(&bytes.Buffer{}, "x", TextOptions{}).Handler().(*Text); !ok {
		t.Error("a buffer: not the text handler")
	}
}
