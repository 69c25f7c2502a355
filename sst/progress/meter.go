package progress

import (
	"fmt"
	"log/slog"
	"time"
)

// The rate is the bytes moved over the last rateWindow of events, and is
// not told before they span minRateSpan: a burst of events (sent apart,
// read together) cannot make it spike.
const (
	rateWindow  = 5 * time.Second
	minRateSpan = time.Second
	// Events closer than sampleGap to the one before replace the newest
	// sample, which keeps the window to a few dozen samples.
	sampleGap = 100 * time.Millisecond
)

// Meter turns successive events into a rate and an ETA, measured over a
// window of the events' own times so that a STATUS line does not jump
// about.
type Meter struct {
	last    Event
	samples []sample // this phase's, oldest first, spanning rateWindow
}

type sample struct {
	at   time.Time
	done int64
}

// Observe records e, sent at e.Time (now when unset or in the future), and
// returns whether the transfer moved forward since the previous event.
func (m *Meter) Observe(e Event, now time.Time) (advanced bool) {
	at := e.Time
	if at.IsZero() || at.After(now) {
		at = now
	}
	if len(m.samples) == 0 || e.Phase != m.last.Phase || e.PID != m.last.PID {
		advanced = e.Done > 0 || len(m.samples) == 0
		m.last, m.samples = e, append(m.samples[:0], sample{at, e.Done})
		return advanced
	}
	if e.Done < m.last.Done {
		// Two counters of one transfer (native-backup's stream and its
		// extraction) interleave: the lower one is behind, not news.
		return false
	}
	n := len(m.samples)
	// Stamps out of order (two senders) never make a negative span.
	at = maxTime(at, m.samples[n-1].at)
	advanced = e.Done > m.last.Done
	if n >= 2 && at.Sub(m.samples[n-2].at) < sampleGap {
		m.samples[n-1] = sample{at, e.Done}
	} else {
		m.samples = append(m.samples, sample{at, e.Done})
	}
	// Keep one sample at or before the window's start, so that it spans it.
	from := at.Add(-rateWindow)
	for len(m.samples) > 2 && !m.samples[1].at.After(from) {
		m.samples = m.samples[1:]
	}
	m.last = e
	return advanced
}

func maxTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

// rank orders the phases of one transfer; -1 for a phase it does not know.
func rank(phase string) int {
	switch phase {
	case PhaseWaiting:
		return 0
	case PhaseReceiving, PhaseSending:
		return 1
	case PhasePreparing:
		return 2
	case PhaseVerifying:
		return 3
	case PhaseMoving:
		return 4
	case PhaseDone, PhaseFailed:
		return 5
	}
	return -1
}

// Late reports whether e is from a phase that its transfer (same role,
// same SST process) has already left, such as a progress tick sent before
// "moving" but read after it: such an event must not take STATUS back.
func (m *Meter) Late(e Event) bool {
	l := m.last
	if len(m.samples) == 0 || e.Role != l.Role || e.PID != l.PID {
		return false
	}
	if l.PID == 0 && rank(l.Phase) == rank(PhaseDone) {
		return false // no PID to tell the next transfer from this one
	}
	r := rank(e.Phase)
	return r >= 0 && r < rank(l.Phase)
}

// Last is the most recent event.
func (m *Meter) Last() Event { return m.last }

// Rate is the rate in bytes per second over the window, and false while
// the events span too little time to tell.
func (m *Meter) Rate() (float64, bool) {
	if len(m.samples) < 2 {
		return 0, false
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	span := last.at.Sub(first.at)
	if span < minRateSpan {
		return 0, false
	}
	return float64(last.done-first.done) / span.Seconds(), true
}

// ETA is the estimated time left, and false while it cannot be known.
func (m *Meter) ETA() (time.Duration, bool) {
	rate, ok := m.Rate()
	if !ok || rate <= 0 || m.last.Total <= 0 || m.last.Done > m.last.Total {
		return 0, false
	}
	eta := float64(m.last.Total-m.last.Done) / rate
	if eta > maxETA.Seconds() {
		return 0, false // a transfer barely moving tells no time
	}
	return time.Duration(eta * float64(time.Second)), true
}

// maxETA is the longest ETA told.
const maxETA = 24 * time.Hour

// String renders the progress in one line, e.g.
// "receiving SST 45% 2.0/4.5 GiB 310 MB/s ETA 8s".
func (m *Meter) String() string {
	s := m.last.Phase
	if s == PhaseReceiving || s == PhaseSending {
		s += " SST"
	}
	return s + m.Detail()
}

// Detail is what String tells after the phase: " 45% 2.0/4.5 GiB 310 MB/s
// ETA 8s", or "" while nothing moved.
func (m *Meter) Detail() string {
	e := m.last
	var s string
	switch {
	case e.Delta && e.Total > 0:
		s = " " + DeltaText(e.Done, e.Total)
		if e.Phase == PhaseReceiving || e.Phase == PhaseSending {
			s += " so far"
		}
	case e.Total > 0 && e.Done <= e.Total:
		s += fmt.Sprintf(" %d%% %s", percent(e.Done, e.Total), sizePair(e.Done, e.Total))
	case e.Done > 0:
		// A total that the transfer outgrew was an estimate; drop it.
		u := unitFor(e.Done)
		s += " " + sizeNum(e.Done, u) + " " + u.name
	}
	if rate, ok := m.Rate(); ok {
		if rate > 0 && rate < 0.95e6 {
			s += fmt.Sprintf(" %.1f MB/s", rate/1e6) // a slow transfer is not "0 MB/s"
		} else {
			s += fmt.Sprintf(" %.0f MB/s", rate/1e6)
		}
	}
	if eta, ok := m.ETA(); ok && !e.Delta {
		s += " ETA " + eta.Round(time.Second).String()
	}
	return s
}

func percent(done, total int64) int64 {
	if total <= 0 {
		return 0
	}
	p := done * 100 / total
	return min(max(p, 0), 100)
}

type unit struct {
	name string
	size float64
}

// unitFor picks GiB from 1 GiB up, MiB below and KiB below 1 MiB, so
// small SSTs do not read 0.0.
func unitFor(n int64) unit {
	switch {
	case n >= 1<<30:
		return unit{"GiB", 1 << 30}
	case n >= 1<<20:
		return unit{"MiB", 1 << 20}
	}
	return unit{"KiB", 1 << 10}
}

func sizeNum(n int64, u unit) string {
	if u.name != "GiB" {
		return fmt.Sprintf("%.0f", float64(n)/u.size)
	}
	return fmt.Sprintf("%.1f", float64(n)/u.size)
}

// sizePair renders "2.0/4.5 GiB": both numbers in the unit of the total.
func sizePair(done, total int64) string {
	u := unitFor(total)
	return sizeNum(done, u) + "/" + sizeNum(total, u) + " " + u.name
}

// DeltaText says how much of a datadir a delta SST moved, "delta: 3.1 GiB
// of 412.0 GiB differ": the SST's log and the supervisor's STATUS= alike.
func DeltaText(differ, total int64) string {
	return "delta: " + HumanBytes(differ) + " of " + HumanBytes(total) + " differ"
}

// DeltaAttrs are DeltaText's figures as log attributes (journal fields
// DELTA_DIFFER_BYTES, DELTA_TOTAL_BYTES).
func DeltaAttrs(differ, total int64) []any {
	return []any{slog.Int64("delta_differ_bytes", differ), slog.Int64("delta_total_bytes", total)}
}

// HumanBytes renders n in the unit that keeps a figure or two before the
// point.
func HumanBytes(n int64) string {
	u := unitFor(n)
	return fmt.Sprintf("%.1f %s", float64(n)/u.size, u.name)
}
