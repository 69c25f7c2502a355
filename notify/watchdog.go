package notify

import (
	"context"
	"log/slog"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
)

// Watchdog sends WATCHDOG=1 every interval/2 for as long as check passes, so
// that a hung node (a SIGSTOPped mariadbd, a deadlocked server) stops the
// pings and systemd's WatchdogSec= acts. check gets a context bounded by
// interval/2. Watchdog returns when ctx is done.
func Watchdog(ctx context.Context, s Sender, interval time.Duration, check func(context.Context) error, log *slog.Logger) {
	log = logging.OrDiscard(log)
	if interval <= 0 {
		return
	}
	period := interval / 2
	t := time.NewTicker(period)
	defer t.Stop()
	healthy := true
	for {
		cctx, cancel := context.WithTimeout(ctx, period)
		err := check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			if !healthy {
				log.Info("watchdog: health check passes again; resuming WATCHDOG=1")
			}
			healthy = true
			if err := s.Notify("WATCHDOG=1"); err != nil {
				log.Warn("watchdog: cannot send WATCHDOG=1", slog.Any("error", err))
			}
		case healthy:
			healthy = false
			log.Warn("watchdog: health check failed, withholding WATCHDOG=1", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
