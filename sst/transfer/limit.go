package transfer

import (
	"context"
	"sync"
	"time"
)

// limiter spreads writes over time so that all streams together stay at
// rate bytes per second. Each caller reserves its bytes on a shared
// timeline and sleeps until its slot, which keeps the long-run rate exact
// without a background refill.
type limiter struct {
	mu   sync.Mutex
	rate float64 // bytes per second
	next time.Time
}

func newLimiter(rate int64) *limiter {
	if rate <= 0 {
		return nil
	}
	return &limiter{rate: float64(rate)}
}

func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil || n <= 0 {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	d := l.next.Sub(now)
	l.mu.Unlock()
	// The first reservation pays for itself too: n bytes at the rate take
	// n/rate, so total time is never below bytes/rate.
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
