package progress

import (
	"fmt"
	"time"
)

// Meter turns successive events into a rate and an ETA, smoothed so that a
// STATUS line does not jump about.
type Meter struct {
	last     Event
	lastAt   time.Time
	rate     float64 // bytes per second, exponentially smoothed
	haveRate bool
}

// Observe records e as seen at now and returns whether the transfer moved
// forward since the previous event.
func (m *Meter) Observe(e Event, now time.Time) (advanced bool) {
	if m.lastAt.IsZero() || e.Phase != m.last.Phase || e.Done < m.last.Done {
		advanced = e.Done > 0 || m.lastAt.IsZero()
		m.last, m.lastAt, m.haveRate, m.rate = e, now, false, 0
		return advanced
	}
	dt := now.Sub(m.lastAt).Seconds()
	d := e.Done - m.last.Done
	if d > 0 && dt > 0 {
		r := float64(d) / dt
		if m.haveRate {
			m.rate = 0.7*m.rate + 0.3*r
		} else {
			m.rate, m.haveRate = r, true
		}
	}
	advanced = d > 0
	if advanced || dt > 1 {
		m.last, m.lastAt = e, now
	}
	m.last.Total = e.Total
	return advanced
}

// Last is the most recent event.
func (m *Meter) Last() Event { return m.last }

// Rate is the smoothed rate in bytes per second, 0 while unknown.
func (m *Meter) Rate() float64 { return m.rate }

// ETA is the estimated time left, and false while it cannot be known.
func (m *Meter) ETA() (time.Duration, bool) {
	if !m.haveRate || m.rate <= 0 || m.last.Total <= 0 || m.last.Done > m.last.Total {
		return 0, false
	}
	return time.Duration(float64(m.last.Total-m.last.Done) / m.rate * float64(time.Second)), true
}

// String renders the progress in one line, e.g.
// "receiving SST 45% 2.0/4.5 GiB 310 MB/s ETA 8s".
func (m *Meter) String() string {
	e := m.last
	s := e.Phase
	if e.Phase == PhaseReceiving || e.Phase == PhaseSending {
		s += " SST"
	}
	switch {
	case e.Total > 0 && e.Done <= e.Total:
		s += fmt.Sprintf(" %d%% %s", percent(e.Done, e.Total), sizePair(e.Done, e.Total))
	case e.Done > 0:
		// A total that the transfer outgrew was an estimate; drop it.
		u := unitFor(e.Done)
		s += " " + sizeNum(e.Done, u) + " " + u.name
	}
	if m.haveRate {
		s += fmt.Sprintf(" %.0f MB/s", m.rate/1e6)
	}
	if eta, ok := m.ETA(); ok {
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

// unitFor picks GiB from 1 GiB up and MiB below, so small SSTs do not read 0.0.
func unitFor(n int64) unit {
	if n >= 1<<30 {
		return unit{"GiB", 1 << 30}
	}
	return unit{"MiB", 1 << 20}
}

func sizeNum(n int64, u unit) string {
	if u.name == "MiB" {
		return fmt.Sprintf("%.0f", float64(n)/u.size)
	}
	return fmt.Sprintf("%.1f", float64(n)/u.size)
}

// sizePair renders "2.0/4.5 GiB": both numbers in the unit of the total.
func sizePair(done, total int64) string {
	u := unitFor(total)
	return sizeNum(done, u) + "/" + sizeNum(total, u) + " " + u.name
}
