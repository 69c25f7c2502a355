package logging

import (
	"context"
	"fmt"
	"log/slog"
	"log/syslog"
)

// DefaultSyslogSocket is where the local syslog daemon listens.
const DefaultSyslogSocket = "/dev/log"

// Syslog is a slog.Handler sending each line of a record's message to the
// local syslog daemon with facility daemon, at err, warning or info as
// the stock SST scripts' "logger -p daemon.<level> -t <tag>" do. The
// attributes follow the last line, as in Text.
type Syslog struct {
	w     *syslog.Writer
	level slog.Leveler
	attrs attrText
}

// NewSyslog connects to the syslog daemon at socket (DefaultSyslogSocket
// when empty), datagram or stream, and tags every line with tag.
func NewSyslog(socket, tag string, level slog.Leveler) (*Syslog, error) {
	if socket == "" {
		socket = DefaultSyslogSocket
	}
	if level == nil {
		level = slog.LevelInfo
	}
	var err error
	for _, network := range []string{"unixgram", "unix"} {
		var w *syslog.Writer
		if w, err = syslog.Dial(network, socket, syslog.LOG_DAEMON|syslog.LOG_INFO, tag); err == nil {
			return &Syslog{w: w, level: level}, nil
		}
	}
	return nil, fmt.Errorf("syslog: connect %s: %w", socket, err)
}

// Close closes the connection.
func (h *Syslog) Close() error { return h.w.Close() }

// Enabled implements slog.Handler.
func (h *Syslog) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// WithAttrs implements slog.Handler.
func (h *Syslog) WithAttrs(as []slog.Attr) slog.Handler { return h.withText(h.attrs.with(as)) }

// WithGroup implements slog.Handler.
func (h *Syslog) WithGroup(name string) slog.Handler { return h.withText(h.attrs.withGroup(name)) }

func (h *Syslog) withText(a attrText) *Syslog {
	c := *h
	c.attrs = a
	return &c
}

// Handle implements slog.Handler.
func (h *Syslog) Handle(_ context.Context, r slog.Record) error {
	send := h.w.Info
	switch {
	case r.Level >= slog.LevelError:
		send = h.w.Err
	case r.Level >= slog.LevelWarn:
		send = h.w.Warning
	}
	for _, line := range h.attrs.lines(r) {
		if err := send(line); err != nil {
			return err
		}
	}
	return nil
}
