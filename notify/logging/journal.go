package logging

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// JournalSocket is where journald takes native entries.
const JournalSocket = "/run/systemd/journal/socket"

// MESSAGE_IDs of the entries journalctl -x explains with
// packaging/galera-supervisor.catalog. Never change one.
const (
	MessageSSTStarted  = "a19d96317dc44d4e811da4a2d5b03ff6"
	MessageSSTFinished = "a3b8f3def95847cdba5a7ef132e0c7ef"
	MessageSSTFailed   = "902400a3631c4174ab866004c460b2a0"
)

// JournalOptions configure a Journal handler.
type JournalOptions struct {
	Socket     string       // default JournalSocket
	Identifier string       // SYSLOG_IDENTIFIER; default the program's name
	Level      slog.Leveler // minimum level; default Info
	// Fallback takes a record journald refused (it is gone, or the entry
	// is malformed); default none.
	Fallback slog.Handler
}

// Journal is a slog.Handler speaking journald's native protocol: each
// record is one entry whose MESSAGE is the line Text would write (the
// message and its attributes, without prefix or level: what journalctl
// shows), PRIORITY its level, and every attribute a field of its own,
// named by the key upper-cased
// (sst_role → SST_ROLE; a group's members get GROUP_KEY; characters a
// field name may not hold become '_'). An entry too big for a datagram goes
// through a sealed memfd, as sd_journal_send does.
type Journal struct {
	c      *journalConn
	opts   JournalOptions
	fields []byte   // encoded With attributes
	prefix string   // group prefix, "G_"
	text   attrText // With attributes for MESSAGE
}

type journalConn struct {
	mu   sync.Mutex
	addr *net.UnixAddr
	conn *net.UnixConn
}

// NewJournal returns a Journal handler. Its socket opens at the first
// record.
func NewJournal(opts JournalOptions) *Journal {
	if opts.Socket == "" {
		opts.Socket = JournalSocket
	}
	if opts.Identifier == "" {
		opts.Identifier = programName()
	}
	if opts.Level == nil {
		opts.Level = slog.LevelInfo
	}
	return &Journal{c: &journalConn{addr: &net.UnixAddr{Name: opts.Socket, Net: "unixgram"}}, opts: opts}
}

func programName() string {
	n := os.Args[0]
	if i := strings.LastIndexByte(n, '/'); i >= 0 {
		n = n[i+1:]
	}
	return n
}

// New returns the logger of a process whose stderr is w: native journal
// entries from ident when w is the journal, text in the style given
// otherwise (and when journald refuses an entry).
func New(w io.Writer, ident string, text TextOptions) *slog.Logger {
	t := NewText(w, text)
	if f, ok := w.(*os.File); ok && IsJournal(f) {
		return slog.New(NewJournal(JournalOptions{Identifier: ident, Level: text.Level, Fallback: t}))
	}
	return slog.New(t)
}

// IsJournal reports whether f is the stream systemd connected to journald,
// as it says with JOURNAL_STREAM=<dev>:<inode> (systemd.exec(5)). A
// stderr redirected elsewhere (mariadbd's log_error file, a pipe) keeps the
// variable but not the device and inode.
func IsJournal(f *os.File) bool {
	dev, ino, ok := strings.Cut(os.Getenv("JOURNAL_STREAM"), ":")
	if !ok {
		return false
	}
	d, err1 := strconv.ParseUint(dev, 10, 64)
	i, err2 := strconv.ParseUint(ino, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == d && st.Ino == i
}

// Enabled implements slog.Handler.
func (h *Journal) Enabled(_ context.Context, l slog.Level) bool { return l >= h.opts.Level.Level() }

// WithAttrs implements slog.Handler.
func (h *Journal) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.fields = append([]byte(nil), h.fields...)
	for _, a := range as {
		c.fields = appendField(c.fields, h.prefix, a)
	}
	c.text = h.text.with(as)
	if h.opts.Fallback != nil {
		c.opts.Fallback = h.opts.Fallback.WithAttrs(as)
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *Journal) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix += FieldName(name) + "_"
	c.text = h.text.withGroup(name)
	if h.opts.Fallback != nil {
		c.opts.Fallback = h.opts.Fallback.WithGroup(name)
	}
	return &c
}

// Handle implements slog.Handler.
func (h *Journal) Handle(ctx context.Context, r slog.Record) error {
	b := entry(h.opts.Identifier, h.text.message(r), r, h.fields, h.prefix)
	err := h.c.send(b)
	if err != nil && h.opts.Fallback != nil {
		return h.opts.Fallback.Handle(ctx, r)
	}
	return err
}

// Entry encodes r as one native journal entry: MESSAGE (r's message and
// attributes), PRIORITY, SYSLOG_IDENTIFIER, CODE_FILE/CODE_LINE/CODE_FUNC
// when the record knows its caller, the pre-encoded fields, then r's
// attributes under prefix.
func Entry(ident string, r slog.Record, fields []byte, prefix string) []byte {
	return entry(ident, attrText{}.message(r), r, fields, prefix)
}

func entry(ident, msg string, r slog.Record, fields []byte, prefix string) []byte {
	var b []byte
	b = appendKV(b, "MESSAGE", msg)
	b = appendKV(b, "PRIORITY", strconv.Itoa(priority(r.Level)))
	b = appendKV(b, "SYSLOG_IDENTIFIER", ident)
	if r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		if f.File != "" {
			b = appendKV(b, "CODE_FILE", f.File)
			b = appendKV(b, "CODE_LINE", strconv.Itoa(f.Line))
			b = appendKV(b, "CODE_FUNC", f.Function)
		}
	}
	b = append(b, fields...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendField(b, prefix, a)
		return true
	})
	return b
}

// priority is the syslog priority of l: err, warning, info, debug.
func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}

// appendField encodes attribute a (a group member by member).
func appendField(b []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += FieldName(a.Key) + "_"
		}
		for _, m := range a.Value.Group() {
			b = appendField(b, p, m)
		}
		return b
	}
	var v string
	switch a.Value.Kind() {
	case slog.KindTime:
		v = a.Value.Time().UTC().Format(time.RFC3339Nano)
	case slog.KindDuration:
		v = strconv.FormatFloat(a.Value.Duration().Seconds(), 'f', -1, 64)
	default:
		v = a.Value.String()
	}
	name := FieldName(prefix + a.Key)
	if own[name] {
		name = "ATTR_" + name
	}
	return appendKV(b, name, v)
}

// own are the fields Entry sets; an attribute of that name is ATTR_<name>.
var own = map[string]bool{"MESSAGE": true, "PRIORITY": true, "SYSLOG_IDENTIFIER": true, "CODE_FILE": true, "CODE_LINE": true, "CODE_FUNC": true}

// FieldName makes key a valid journal field name: upper case, A-Z, 0-9
// and '_' only, not starting with '_' (those are journald's own) or a
// digit, at most 64 characters.
func FieldName(key string) string {
	n := []byte(strings.ToUpper(key))
	for i, c := range n {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			n[i] = '_'
		}
	}
	s := strings.TrimLeft(string(n), "_")
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		s = "F_" + s
	}
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// appendKV writes KEY=value, or, when value holds a newline, KEY, a
// newline, its length as 64-bit little endian, and the bytes.
func appendKV(b []byte, key, value string) []byte {
	b = append(b, key...)
	if !strings.ContainsRune(value, '\n') {
		b = append(b, '=')
		b = append(b, value...)
		return append(b, '\n')
	}
	b = append(b, '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, '\n')
}

func (c *journalConn) send(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	for try := 0; try < 2; try++ {
		if c.conn == nil {
			if c.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram"}); err != nil {
				c.conn = nil
				return fmt.Errorf("journal: socket: %w", err)
			}
		}
		if _, _, err = c.conn.WriteMsgUnix(b, nil, c.addr); err == nil {
			return nil
		}
		if errors.Is(err, syscall.EMSGSIZE) || errors.Is(err, syscall.ENOBUFS) {
			return c.sendMemfd(b)
		}
		// A socket gone bad: a new one, once.
		c.conn.Close()
		c.conn = nil
	}
	return fmt.Errorf("journal: send to %s: %w", c.addr.Name, err)
}

// sendMemfd passes an entry too big for a datagram as a sealed memfd.
func (c *journalConn) sendMemfd(b []byte) error {
	fd, err := unix.MemfdCreate("journal-entry", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fmt.Errorf("journal: memfd_create: %w", err)
	}
	defer unix.Close(fd)
	for p := b; len(p) > 0; {
		n, err := unix.Write(fd, p)
		if err != nil {
			return fmt.Errorf("journal: write memfd: %w", err)
		}
		p = p[n:]
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		return fmt.Errorf("journal: seal memfd: %w", err)
	}
	if _, _, err := c.conn.WriteMsgUnix(nil, unix.UnixRights(fd), c.addr); err != nil {
		return fmt.Errorf("journal: send memfd to %s: %w", c.addr.Name, err)
	}
	return nil
}
