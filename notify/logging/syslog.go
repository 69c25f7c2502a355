package logging

import (
	"context"
	"fmt"
	"log/slog"
	"log/syslog"
	"strings"
)

// DefaultSyslogSocket is where the local syslog daemon listens.
const DefaultSyslogSocket = "/dev/log"

// Syslog is a slog.Handler sending each line of a record's message to the
// local syslog daemon with facility daemon, at err, warning or info as
// the stock SST scripts' "logger -p daemon.<level> -t <tag>" do.
// Attributes are left out, as in Text.
type Syslog struct {
	w     *syslog.Writer
	level slog.Leveler
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

// WithAttrs implements slog.Handler: attributes are not shown.
func (h *Syslog) WithAttrs([]slog.Attr) slog.Handler { return h }

// WithGroup implements slog.Handler.
func (h *Syslog) WithGroup(string) slog.Handler { return h }

// Handle implements slog.Handler.
func (h *Syslog) Handle(_ context.Context, r slog.Record) error {
	send := h.w.Info
	switch {
	case r.Level >= slog.LevelError:
		send = h.w.Err
	case r.Level >= slog.LevelWarn:
		send = h.w.Warning
	}
	for _, line := range strings.Split(strings.TrimRight(r.Message, "\n"), "\n") {
		if err := send(line); err != nil {
			return err
		}
	}
	return nil
}
