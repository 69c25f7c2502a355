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
	"strings"
	"sync"
	"time"
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
	// Plain is "<prefix><message>", with "WARNING: " or
	// "ERROR: " before the message at those levels.
	Plain Style = iota
	// SST is "WSREP_SST: [INFO] <message> (20060102
	// 15:04:05.000)", one per line of the message, as the stock scripts'
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

// Text is a slog.Handler writing the message of each record as a readable
// line. Attributes are left out: a message says everything for a human,
// and its attributes repeat it for the structured sinks (journald), where
// they become fields.
type Text struct {
	mu   *sync.Mutex
	w    io.Writer
	opts TextOptions
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

// WithAttrs implements slog.Handler: see Text for why they are not shown.
func (h *Text) WithAttrs([]slog.Attr) slog.Handler { return h }

// WithGroup implements slog.Handler.
func (h *Text) WithGroup(string) slog.Handler { return h }

// Handle implements slog.Handler.
func (h *Text) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	msg := strings.TrimRight(r.Message, "\n")
	switch h.opts.Style {
	case SST:
		ts := h.opts.Now().UTC().Format("20060102 15:04:05.000")
		for _, line := range strings.Split(msg, "\n") {
			fmt.Fprintf(&b, "WSREP_SST: [%s] %s (%s)\n", sstLevel(r.Level), line, ts)
		}
	default:
		b.WriteString(h.opts.Prefix)
		switch {
		case r.Level >= slog.LevelError:
			b.WriteString("ERROR: ")
		case r.Level >= slog.LevelWarn:
			b.WriteString("WARNING: ")
		}
		b.WriteString(msg)
		b.WriteByte('\n')
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
