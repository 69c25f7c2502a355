package sst

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst/progress"
)

// The stock scripts run pv when [sst] progress is set: progress=1 sends
// its lines to the SST's stderr, progress=FILE to that file or FIFO.
// pvLines writes the same lines from the native methods' progress events,
// in the stock script's pv format:
//
//	joiner => Rate:41.2MiB/s Avg:39.8MiB/s Elapsed:0:00:10 Bytes: 412MiB 35%

// pvInterval is pv -i 10, the stock script's.
const pvInterval = 10 * time.Second

type pvLines struct {
	mu       sync.Mutex
	w        io.Writer
	role     string
	now      func() time.Time
	start    time.Time
	last     time.Time
	lastDone int64
	seen     progress.Event // the latest count and total
	done     bool
}

// openProgress opens what [sst] progress names; nil for none. A FIFO
// without a reader is skipped with a warning, rather than block the SST.
func (s *Session) openProgress(stderr io.Writer, now func() time.Time) (*pvLines, io.Closer) {
	v := s.Option("progress", "")
	p := &pvLines{w: stderr, role: string(s.Args.Role), now: now, start: now()}
	switch v {
	case "", "none", "0":
		return nil, nopCloser{}
	case "1":
		return p, nopCloser{}
	}
	f, err := os.OpenFile(v, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK, 0o640)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) {
			err = errors.New("a FIFO no one reads")
		}
		s.Log.Warn("[sst] progress: cannot open the file; no progress lines", slog.String("path", v), slog.Any("error", err))
		return nil, nopCloser{}
	}
	p.w = f
	return p, f
}

// Report writes a line every pvInterval and at the end.
func (p *pvLines) Report(e progress.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	final := e.Phase == progress.PhaseDone || e.Phase == progress.PhaseFailed
	if e.Done > 0 {
		p.seen.Done = e.Done
	}
	if e.Total > 0 {
		p.seen.Total = e.Total
	}
	if p.done || !final && (now.Sub(p.last) < pvInterval || e.Done == 0) {
		return
	}
	e.Done, e.Total = p.seen.Done, p.seen.Total
	el := now.Sub(p.start)
	rate := float64(e.Done-p.lastDone) / max(now.Sub(p.last).Seconds(), 1e-3)
	if p.last.IsZero() {
		rate = float64(e.Done) / max(el.Seconds(), 1e-3)
	}
	avg := float64(e.Done) / max(el.Seconds(), 1e-3)
	line := fmt.Sprintf("%s => Rate:%s/s Avg:%s/s Elapsed:%s Bytes: %s", p.role, iec(rate), iec(avg), clock(el), iec(float64(e.Done)))
	if e.Total > 0 {
		line += fmt.Sprintf(" %d%%", min(100, e.Done*100/e.Total))
	}
	fmt.Fprintln(p.w, line)
	p.last, p.lastDone, p.done = now, e.Done, final
}

// iec writes n bytes as pv does: 412MiB, 1.50GiB.
func iec(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1000 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if n < 10 && i > 0 {
		return fmt.Sprintf("%.2f%s", n, units[i])
	}
	return fmt.Sprintf("%.0f%s", n, units[i])
}

// clock is pv's elapsed time: H:MM:SS.
func clock(d time.Duration) string {
	s := int(d.Seconds())
	return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
}
