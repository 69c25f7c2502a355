package main

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// sstStatus is what a supervisor's STATUS= line says about an SST, e.g.
// "receiving SST 45% 115/256 MiB 38 MB/s ETA 4s" (progress.Meter.String).
type sstStatus struct {
	Phase   string // receiving, sending, preparing, verifying, moving, waiting
	Percent int    // -1: no total known
	Done    int64  // bytes, to the unit's precision
	Total   int64
	// The bar's own rate and ETA (barPrinter.update); 0 and false while
	// unknown. The supervisor's are not read.
	MBps   float64
	ETA    time.Duration
	HasETA bool
}

var (
	reSSTPhase = regexp.MustCompile(`^(?:donor, |donor: )?(waiting|receiving|sending|preparing|verifying|moving)(?: SST)?(?: by \S+(?: to \S+)?)?(?:$| )`)
	rePercent  = regexp.MustCompile(` (\d{1,3})% ([0-9.]+)/([0-9.]+) (KiB|MiB|GiB)(?: |$)`)
	reDoneOnly = regexp.MustCompile(`^ ([0-9.]+) (KiB|MiB|GiB)(?: |$)`)
)

// parseStatus reads an SST progress STATUS= line; ok is false for any other
// phase (starting, joined, catching up, synced...).
func parseStatus(line string) (s sstStatus, ok bool) {
	m := reSSTPhase.FindStringSubmatch(line)
	if m == nil {
		return s, false
	}
	s.Phase, s.Percent = m[1], -1
	rest := line[len(m[0]):]
	if rest != "" {
		rest = " " + rest
	}
	unit := func(u string) float64 {
		switch u {
		case "GiB":
			return 1 << 30
		case "KiB":
			return 1 << 10
		}
		return 1 << 20
	}
	if m := rePercent.FindStringSubmatch(rest); m != nil {
		p, _ := strconv.Atoi(m[1])
		d, err1 := strconv.ParseFloat(m[2], 64)
		t, err2 := strconv.ParseFloat(m[3], 64)
		if err1 == nil && err2 == nil && p <= 100 {
			s.Percent = p
			s.Done, s.Total = int64(d*unit(m[4])), int64(t*unit(m[4]))
		}
	} else if m := reDoneOnly.FindStringSubmatch(rest); m != nil {
		if d, err := strconv.ParseFloat(m[1], 64); err == nil {
			s.Done = int64(d * unit(m[2]))
		}
	}
	return s, true
}

// barWidth keeps a whole line within 80 columns, so that \r redraws it.
const barWidth = 20

// renderBar draws one line of the bar: what node is doing, its percent,
// bytes, rate and ETA, and how long the SST has run.
func renderBar(label string, s sstStatus, elapsed time.Duration) string {
	frac := 0.0
	if s.Percent >= 0 {
		frac = float64(s.Percent) / 100
	}
	switch s.Phase {
	case "preparing", "verifying", "moving":
		frac = 1 // the bytes are all in
	}
	fill := int(frac * barWidth)
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s%s]", label, strings.Repeat("#", fill), strings.Repeat(".", barWidth-fill))
	switch {
	case s.Phase == "waiting":
		b.WriteString(" waiting for the donor")
	case s.Phase != "receiving" && s.Phase != "sending":
		fmt.Fprintf(&b, " %s", s.Phase)
		if s.Phase == "preparing" {
			b.WriteString(" (mariadb-backup --prepare)")
		}
	case s.Percent >= 0:
		fmt.Fprintf(&b, " %3d%% %s", s.Percent, sizePair(s.Done, s.Total))
	default:
		fmt.Fprintf(&b, " %s", sizePair(s.Done, 0))
	}
	if s.MBps > 0 && (s.Phase == "receiving" || s.Phase == "sending") {
		fmt.Fprintf(&b, " %4.0f MB/s", s.MBps)
	}
	if s.HasETA && (s.Phase == "receiving" || s.Phase == "sending") {
		fmt.Fprintf(&b, " ETA %s", s.ETA)
	}
	fmt.Fprintf(&b, "  %5.1fs", elapsed.Seconds())
	return b.String()
}

// sizePair renders "115/256 MiB" (or "1.2/4.5 GiB"), in the total's unit;
// without a total, the bytes done alone.
func sizePair(done, total int64) string {
	u, f, div := "MiB", "%.0f", float64(1<<20)
	if max(done, total) >= 1<<30 {
		u, f, div = "GiB", "%.1f", 1<<30
	}
	if total <= 0 {
		return fmt.Sprintf(f+" %s", float64(done)/div, u)
	}
	return fmt.Sprintf(f+"/"+f+" %s", float64(done)/div, float64(total)/div, u)
}

// barPrinter draws the bar from STATUS= lines: redrawn in place with \r on
// a terminal; on anything else one line per phase change and then at most
// one per every, so that a log of the run stays short.
type barPrinter struct {
	w     io.Writer
	tty   bool
	every time.Duration
	label string
	start time.Time // of the SST: the first line drawn

	recvAt   time.Time // the first receiving line, and its bytes
	recvDone int64

	drawn     bool // a \r line is on screen
	lastPhase string
	lastAt    time.Time
	last      string
	updates   int // lines or redraws written
}

// update draws s, seen at now. The rate and ETA are the bar's own, from
// the byte counts since the first receiving line: the supervisor's rate is
// smoothed from events as it reads them, which come in bursts.
func (p *barPrinter) update(s sstStatus, now time.Time) {
	if p.start.IsZero() {
		p.start = now
	}
	s.MBps, s.ETA, s.HasETA = 0, 0, false
	if s.Phase == "receiving" || s.Phase == "sending" {
		if p.recvAt.IsZero() {
			p.recvAt, p.recvDone = now, s.Done
		}
		if dt := now.Sub(p.recvAt).Seconds(); dt > 0 && s.Done > p.recvDone {
			rate := float64(s.Done-p.recvDone) / dt
			s.MBps = rate / 1e6
			if s.Total >= s.Done {
				s.ETA = time.Duration(float64(s.Total-s.Done) / rate * float64(time.Second)).Round(time.Second)
				s.HasETA = true
			}
		}
	}
	line := renderBar(p.label, s, now.Sub(p.start))
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		p.drawn = true
		p.updates++
		return
	}
	if s.Phase == p.lastPhase && now.Sub(p.lastAt) < p.every {
		p.last = line
		return
	}
	fmt.Fprintln(p.w, line)
	p.lastPhase, p.lastAt, p.last = s.Phase, now, ""
	p.updates++
}

// finish ends the bar: on a terminal the line is kept; elsewhere the last
// line not yet written is.
func (p *barPrinter) finish() {
	switch {
	case p.tty && p.drawn:
		fmt.Fprintln(p.w)
		p.drawn = false
	case !p.tty && p.last != "":
		fmt.Fprintln(p.w, p.last)
		p.last = ""
		p.updates++
	}
}
