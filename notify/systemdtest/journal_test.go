package systemdtest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
)

// What journalHelper logs and TestSystemdJournalBig expects back.
const (
	bigErrorSize = 300 << 10 // SST_ERROR: multi-line, past any datagram
	bigLineSize  = 80 << 10  // SST_BIG_LINE: one line, past journald's 64 KiB thresholds
	multiLine    = "first line\nFAKE_FIELD=injected\n\tindented line\n"
	rawValue     = "\xff\xfe\x00not UTF-8\nsecond line"
	helperIdent  = "gs-journal-helper"
)

// bigValue is n bytes of numbered lines (newline-terminated when nl), so
// that a cut or a reordering shows where it happened.
func bigValue(n int, nl bool) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%07d the SST failed here, and here is why: %s", i, strings.Repeat("x", i%37))
		if nl {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()[:n]
}

// journalHelper is the test binary under systemd-run with
// GS_SYSTEMDTEST_HELPER=journal: it sends two native entries through
// logging.Journal with no fallback, so that a refused entry is an exit
// code and not a text line on stderr. The first, multi-line, fits a
// datagram; the second must go by memfd.
func journalHelper() int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "journal helper: "+format+"\n", args...)
		return 1
	}
	if !logging.IsJournal(os.Stderr) {
		return fail("stderr is not the journal (JOURNAL_STREAM=%q)", os.Getenv("JOURNAL_STREAM"))
	}
	h := logging.NewJournal(logging.JournalOptions{Identifier: helperIdent}).
		WithAttrs([]slog.Attr{slog.String("gs_test_id", os.Getenv("GS_TEST_ID"))})
	ctx := context.Background()

	r := slog.NewRecord(time.Now(), slog.LevelWarn, "multi-line entry\nits second line", 0)
	r.AddAttrs(multiLineAttrs()...)
	if err := h.Handle(ctx, r); err != nil {
		return fail("multi-line entry: %v", err)
	}

	r = slog.NewRecord(time.Now(), slog.LevelError, "big entry", 0)
	r.AddAttrs(bigAttrs()...)
	// The entry must not fit a datagram, or the memfd path goes untested.
	limit, err := sendBuffer()
	if err != nil {
		return fail("%v", err)
	}
	if n := len(logging.Entry(helperIdent, r, nil, "")); n <= limit {
		return fail("big entry is %d bytes, within a datagram's %d", n, limit)
	}
	if err := h.Handle(ctx, r); err != nil {
		return fail("big entry: %v", err)
	}
	return 0
}

func multiLineAttrs() []slog.Attr {
	return []slog.Attr{slog.String("sst_detail", multiLine), slog.String("sst_raw", rawValue),
		slog.Group("sst", slog.String("peer", "127.0.0.1:4444"), slog.String("role", "joiner")),
		slog.Int("sst.bytes-sent", 12345)}
}

func bigAttrs() []slog.Attr {
	return []slog.Attr{slog.String("sst_error", bigValue(bigErrorSize, true)), slog.String("sst_big_line", bigValue(bigLineSize, false)),
		slog.String("sst_tail", "after the big fields")}
}

// textOf is what logging.Text writes for msg and as at Info with no
// prefix: what a Journal entry's MESSAGE holds.
func textOf(msg string, as ...slog.Attr) string {
	var b bytes.Buffer
	r := slog.NewRecord(time.Time{}, slog.LevelInfo, msg, 0)
	r.AddAttrs(as...)
	logging.NewText(&b, logging.TextOptions{}).Handle(context.Background(), r)
	return strings.TrimSuffix(b.String(), "\n")
}

// sendBuffer is a new datagram socket's SO_SNDBUF, which bounds a datagram.
func sendBuffer() (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	n, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		return 0, fmt.Errorf("getsockopt SO_SNDBUF: %w", err)
	}
	return n, nil
}

// fieldBytes is field k of a journalctl -o json entry as bytes: a string,
// or an array of byte values for one that is not printable UTF-8.
func fieldBytes(e map[string]any, k string) ([]byte, error) {
	switch v := e[k].(type) {
	case string:
		return []byte(v), nil
	case []any:
		b := make([]byte, 0, len(v))
		for _, x := range v {
			f, ok := x.(float64)
			if !ok || f < 0 || f > 255 || f != float64(int(f)) {
				return nil, fmt.Errorf("%s is an array of %T, not of bytes: the field appears more than once?", k, x)
			}
			b = append(b, byte(f))
		}
		return b, nil
	case nil:
		if _, ok := e[k]; ok {
			return nil, fmt.Errorf("%s is null (too big for journalctl without --all)", k)
		}
		return nil, fmt.Errorf("no field %s", k)
	default:
		return nil, fmt.Errorf("%s is a %T", k, v)
	}
}

// firstDiff says where got departs from want.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	end := func(b []byte) []byte { return b[i:min(len(b), i+40)] }
	return fmt.Sprintf("%d bytes, want %d; first difference at byte %d: %q, want %q", len(got), len(want), i, end(got), end(want))
}

// TestSystemdJournalBig sends native entries from a process under
// systemd-run (JOURNAL_STREAM set by systemd) to the real journald: a
// multi-line entry arrives with its newlines (in the binary length form a
// "FAKE_FIELD=" line inside a value stays inside it), a non-UTF-8 value as
// bytes, fields under their names; an entry of ~380 KiB, too big for a
// datagram, arrives whole by sealed memfd, its fields past 64 KiB uncut.
func TestSystemdJournalBig(t *testing.T) {
	m := Boot(t, Config{Name: "gs-jbig"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	installHelper(t, m)
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	const unitName = "gs-journal-big.service"
	if out, err := m.Exec(ctx, "systemd-run", "--wait", "--quiet", "--unit="+unitName, "--property=User=mysql",
		"--setenv=GS_SYSTEMDTEST_HELPER=journal", "--setenv=GS_TEST_ID="+id, helperPath); err != nil {
		t.Fatalf("helper: %v\n%s\n%s", err, out, m.Journal(ctx, unitName))
	}
	if _, err := m.Exec(ctx, "journalctl", "--sync"); err != nil {
		t.Fatal(err)
	}
	es := journalEntries(ctx, t, m, "--all", "-u", unitName, "GS_TEST_ID="+id)
	if len(es) != 2 {
		t.Fatalf("%d entries with GS_TEST_ID=%s, want 2\n%s", len(es), id, m.Journal(ctx, unitName))
	}
	want := func(e map[string]any, fields map[string]string) {
		t.Helper()
		for k, v := range fields {
			got, err := fieldBytes(e, k)
			if err != nil {
				t.Errorf("%s: %v", field(e, "MESSAGE"), err)
			} else if !bytes.Equal(got, []byte(v)) {
				t.Errorf("%s: %s is %s", field(e, "MESSAGE"), k, firstDiff(got, []byte(v)))
			}
		}
	}
	common := map[string]string{"SYSLOG_IDENTIFIER": helperIdent, "_SYSTEMD_UNIT": unitName, "_TRANSPORT": "journal"}

	ml, big := es[0], es[1]
	if strings.HasPrefix(field(ml, "MESSAGE"), "big entry") {
		ml, big = big, ml
	}
	t.Logf("big entry: SST_ERROR %d bytes, SST_BIG_LINE %d bytes", len(field(big, "SST_ERROR")), len(field(big, "SST_BIG_LINE")))
	t.Run("multi-line", func(t *testing.T) {
		want(ml, common)
		want(ml, map[string]string{"MESSAGE": textOf("multi-line entry\nits second line", append([]slog.Attr{slog.String("gs_test_id", id)}, multiLineAttrs()...)...),
			"PRIORITY":   "4",
			"SST_DETAIL": multiLine, "SST_RAW": rawValue, "SST_PEER": "127.0.0.1:4444", "SST_ROLE": "joiner",
			"SST_BYTES_SENT": "12345"})
		if _, ok := ml["FAKE_FIELD"]; ok {
			t.Errorf("a line inside SST_DETAIL became a field of its own: FAKE_FIELD=%v", ml["FAKE_FIELD"])
		}
	})
	t.Run("memfd", func(t *testing.T) {
		want(big, common)
		want(big, map[string]string{"MESSAGE": textOf("big entry", append([]slog.Attr{slog.String("gs_test_id", id)}, bigAttrs()...)...),
			"PRIORITY": "3", "SST_TAIL": "after the big fields",
			"SST_ERROR": bigValue(bigErrorSize, true), "SST_BIG_LINE": bigValue(bigLineSize, false)})
		if n := strings.Count(field(big, "SST_ERROR"), "\n"); n < 1000 {
			t.Errorf("SST_ERROR has %d newlines", n)
		}
	})
}
