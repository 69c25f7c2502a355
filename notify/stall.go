package notify

import (
	"context"
	"log/slog"
	"os"
	"time"
)

// The keepalive window (Keepalive.Window) is how long SST progress may stall
// before the unit's start timeout fires. By default it is the unit's own
// TimeoutStartSec: systemd counts each extension from when it receives it
// and never shortens the timeout, and the last extension goes out no later
// than the last progress, so a transfer that stalls fails the start at most
// one window after its last byte (then the stop: TimeoutStopSec). A
// transfer that moves reports progress at least every chunk and is extended
// every Window/4, so it survives as long as a chunk takes less than
// 3/4 of the window.
const (
	// DefaultStallWindow is used when the unit's start timeout is not
	// known: mariadbd's own WSREP_EXTEND_TIMEOUT_INTERVAL.
	DefaultStallWindow = 60 * time.Second
	// MinStallWindow bounds a window derived from a short TimeoutStartSec
	// below, so that a slow transfer that moves is not killed between two
	// chunks.
	MinStallWindow = 10 * time.Second
	// NoStallWindow: the start timeout is infinite, nothing is extended.
	NoStallWindow time.Duration = -1

	lookupTimeout = 5 * time.Second
)

// StartTimeoutFunc reads the start timeout of the service unit whose main
// process is the caller: the unit's name and its TimeoutStartSec, 0 when
// that is infinity.
type StartTimeoutFunc func(context.Context) (unit string, timeout time.Duration, err error)

// StallWindowFor is the window for a unit whose TimeoutStartSec is timeout
// (0: infinity).
func StallWindowFor(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return NoStallWindow
	}
	return max(timeout, MinStallWindow)
}

// NotUnderSystemd says why this process is not a systemd service's main
// process, and "" when it may be one.
func NotUnderSystemd() string {
	if os.Getenv(EnvSocket) == "" {
		return "$NOTIFY_SOCKET is unset"
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return "the system was not booted with systemd (no /run/systemd/system)"
	}
	return ""
}

// ChooseStallWindow picks the keepalive window and logs why: override (the
// --sst-stall-timeout flag) when positive; else, unless notUnderSystemd
// says why there is no unit (NotUnderSystemd), StallWindowFor the unit's
// start timeout as lookup reads it; else, or when lookup fails,
// DefaultStallWindow.
func ChooseStallWindow(ctx context.Context, log *slog.Logger, override time.Duration, notUnderSystemd string, lookup StartTimeoutFunc) time.Duration {
	window := func(w time.Duration, source string) []any {
		return []any{slog.Duration("stall_window", w), slog.String("stall_window_source", source)}
	}
	if override > 0 {
		log.Info("SST stall window set by --sst-stall-timeout", window(override, "flag")...)
		return override
	}
	if notUnderSystemd != "" {
		log.Info("SST stall window: the default, not under systemd",
			append(window(DefaultStallWindow, "default"), slog.String("reason", notUnderSystemd))...)
		return DefaultStallWindow
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	unit, timeout, err := lookup(lctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("SST stall window: the default, cannot read the unit's TimeoutStartSec",
				append(window(DefaultStallWindow, "default"), slog.Any("error", err))...)
		}
		return DefaultStallWindow
	}
	w := StallWindowFor(timeout)
	if w == NoStallWindow {
		log.Info("no SST stall window: the unit has TimeoutStartSec=infinity, its start needs no extension",
			slog.String("unit", unit), slog.String("timeout_start", "infinity"), slog.String("stall_window_source", "unit"))
		return w
	}
	attrs := append(window(w, "unit"), slog.String("unit", unit), slog.Duration("timeout_start", timeout))
	if w != timeout {
		log.Info("SST stall window from the unit's TimeoutStartSec, at least min_stall_window",
			append(attrs, slog.Duration("min_stall_window", MinStallWindow))...)
	} else {
		log.Info("SST stall window from the unit's TimeoutStartSec", attrs...)
	}
	return w
}
