// Package logging holds the slog handlers every part of galera-supervisor
// logs through: plain text on stderr (the supervisor's lines, and the
// "WSREP_SST: [INFO] ..." lines mariadbd's error log expects from an SST
// process), journald's native protocol with structured fields, and syslog.
// Loggers are made once in main and passed down; nothing here is global.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Discard is a logger that drops everything, for a nil *slog.Logger.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// OrDiscard returns l, or Discard when l is nil.
func OrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return Discard()
	}
	return l
}

// Style is the shape of a text line.
type Style int

const (
	// Plain is "<prefix><message> key=value ...", with "WARNING: " or
	// "ERROR: " before the message at those levels.
	Plain Style = iota
	// SST is "WSREP_SST: [INFO] <message> key=value ... (20060102
	// 15:04:05.000)", as the stock scripts'
	// wsrep_log_info/wsrep_log_warning/wsrep_log_error print them.
	SST
)

// TextOptions configure a Text handler.
type TextOptions struct {
	Style  Style
	Prefix string           // Plain only: before every line
	Level  slog.Leveler     // minimum level; default Info
	Now    func() time.Time // SST style's timestamp; default time.Now
}

// Text is a slog.Handler writing each record as a readable line: the
// message, then its attributes (those added by With first) as slog's
// TextHandler writes them, key=value with groups as group.key and a value
// quoted when it holds a space, '=', '"' or a control character. A value
// never spans lines. A message of several lines is several lines, each
// with the prefix and level; the attributes follow the last.
type Text struct {
	mu    *sync.Mutex
	w     io.Writer
	opts  TextOptions
	attrs attrText
}

// NewText returns a Text handler writing to w.
func NewText(w io.Writer, opts TextOptions) *Text {
	if opts.Level == nil {
		opts.Level = slog.LevelInfo
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Text{mu: new(sync.Mutex), w: w, opts: opts}
}

// Enabled implements slog.Handler.
func (h *Text) Enabled(_ context.Context, l slog.Level) bool { return l >= h.opts.Level.Level() }

// WithAttrs implements slog.Handler.
func (h *Text) WithAttrs(as []slog.Attr) slog.Handler { return h.withText(h.attrs.with(as)) }

// WithGroup implements slog.Handler.
func (h *Text) WithGroup(name string) slog.Handler { return h.withText(h.attrs.withGroup(name)) }

func (h *Text) withText(a attrText) *Text {
	c := *h
	c.attrs = a
	return &c
}

// Handle implements slog.Handler.
func (h *Text) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	lines := h.attrs.lines(r)
	switch h.opts.Style {
	case SST:
		ts := h.opts.Now().UTC().Format("20060102 15:04:05.000")
		for _, line := range lines {
			fmt.Fprintf(&b, "WSREP_SST: [%s] %s (%s)\n", sstLevel(r.Level), line, ts)
		}
	default:
		for _, line := range lines {
			b.WriteString(h.opts.Prefix)
			switch {
			case r.Level >= slog.LevelError:
				b.WriteString("ERROR: ")
			case r.Level >= slog.LevelWarn:
				b.WriteString("WARNING: ")
			}
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

// sstLevel is the stock scripts' word for l.
func sstLevel(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	}
	return "INFO"
}

// MessageIDKey is the attribute that gives a journal entry its MESSAGE_ID
// (the catalog's key). It is a field, never text: the text handlers and a
// journal entry's MESSAGE leave it out.
const MessageIDKey = "message_id"

// attrText renders attributes for the text handlers (Text, Syslog, and a
// journal entry's MESSAGE): pre holds those added by With, already
// rendered, each after a space; group is the open groups, "g1.g2.".
type attrText struct {
	pre   string
	group string
}

func (t attrText) with(as []slog.Attr) attrText {
	b := []byte(t.pre)
	for _, a := range as {
		b = appendTextAttr(b, t.group, a)
	}
	t.pre = string(b)
	return t
}

func (t attrText) withGroup(name string) attrText {
	if name != "" {
		t.group += name + "."
	}
	return t
}

// message is r's message with its attributes after the last line.
func (t attrText) message(r slog.Record) string {
	msg := strings.TrimRight(r.Message, "\n")
	b := append([]byte(msg), t.pre...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendTextAttr(b, t.group, a)
		return true
	})
	if msg == "" && len(b) > 0 {
		b = b[1:] // no message: no space before the first attribute
	}
	return string(b)
}

// lines is message split at its newlines.
func (t attrText) lines(r slog.Record) []string { return strings.Split(t.message(r), "\n") }

// appendTextAttr appends " key=value" for a, " group.key=value" for each
// member of a group; an empty attribute or group adds nothing.
func appendTextAttr(b []byte, group string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			group += a.Key + "."
		}
		for _, m := range a.Value.Group() {
			b = appendTextAttr(b, group, m)
		}
		return b
	}
	key := group + a.Key
	if key == MessageIDKey {
		return b
	}
	var v string
	switch a.Value.Kind() {
	case slog.KindTime:
		v = a.Value.Time().Format("2006-01-02T15:04:05.000Z07:00")
	default:
		v = a.Value.String()
	}
	b = append(b, ' ')
	b = appendQuoted(b, key)
	b = append(b, '=')
	return appendQuoted(b, v)
}

// appendQuoted appends s, in Go's double quotes when it is empty or holds
// a space, '=', '"', a control character or invalid UTF-8, as slog's
// TextHandler does.
func appendQuoted(b []byte, s string) []byte {
	if s == "" {
		return append(b, `""`...)
	}
	for _, r := range s {
		if r == ' ' || r == '=' || r == '"' || r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.AppendQuote(b, s)
		}
	}
	return append(b, s...)
}

// ParseAttrs reads back the attributes a Text line carries after its
// message, key → value (quoted values unquoted), for tools that read text
// logs: the SST's log file, the supervisor's lines in a journal. Words of
// the message that hold a '=' read as attributes too.
func ParseAttrs(line string) map[string]string {
	m := map[string]string{}
	// A line as written ends in a newline, which belongs to no value.
	line = strings.TrimRight(line, "\n")
	for {
		i := strings.IndexByte(line, '=')
		if i < 0 {
			return m
		}
		key := line[strings.LastIndexByte(line[:i], ' ')+1 : i]
		rest := line[i+1:]
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return m
			}
			m[key], _ = strconv.Unquote(q)
			line = rest[len(q):]
			continue
		}
		v, after, _ := strings.Cut(rest, " ")
		m[key], line = v, after
	}
}
