package main

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"github.com/galera-supervisor/galera-supervisor/sst/donorlock"
)

// summary is what the demo tells of node3's join once it is over.
type summary struct {
	Joiner, Method, Donor string
	Join                  time.Duration // the supervisor's start to its READY=1

	SST     time.Duration // the SST method's run on the joiner, start to finish
	Bytes   int64         // payload received
	Receive time.Duration // receiving those bytes
	Prepare time.Duration // mariadb-backup --prepare; 0 when not seen
	// FromStatus: the joiner's log lacked the numbers, so they come from
	// the STATUS= lines (bytes to the MiB, times to the second).
	FromStatus bool

	Lock    donorlock.Lock
	LockErr error
}

// parseJoinerLog fills s's SST, Bytes, Receive and Prepare from what the
// joiner's error log gained during the join: the SST's lines "received the
// snapshot", "prepared the snapshot" (sst/nativebackup) and "SST finished"
// (sst/session.go), read by their attributes. It reports whether it found
// the received line, without which the numbers are not there.
func (s *summary) parseJoinerLog(b []byte) bool {
	found := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.Contains(l, "] received the snapshot "):
			a := logging.ParseAttrs(l)
			n, err1 := strconv.ParseInt(a["sst_bytes"], 10, 64)
			d, err2 := time.ParseDuration(a["elapsed"])
			if err1 == nil && err2 == nil && n >= 0 && d >= 0 {
				s.Bytes, s.Receive, found = n, d, true
			}
		case strings.Contains(l, "] prepared the snapshot "):
			if d, err := time.ParseDuration(logging.ParseAttrs(l)["elapsed"]); err == nil && d >= 0 {
				s.Prepare = d
			}
		case strings.Contains(l, "] SST finished "):
			a := logging.ParseAttrs(l)
			if a["sst_role"] != "joiner" || s.Method != "" && a["sst_method"] != s.Method {
				continue
			}
			if f, err := strconv.ParseFloat(a["sst_seconds"], 64); err == nil && f >= 0 && f < 1e9 {
				s.SST = time.Duration(f * float64(time.Second))
			}
		}
	}
	return found
}

// fromStatus fills what parseJoinerLog could not from the STATUS= lines the
// joiner's supervisor sent during the join.
func (s *summary) fromStatus(lines []statusLine) {
	s.FromStatus = true
	var first, recvStart, recvEnd time.Time
	for _, l := range lines {
		st, ok := parseStatus(l.Text)
		if first.IsZero() {
			if !ok {
				continue
			}
			first = l.At
		}
		if !ok { // the SST is over: joined, synced...
			s.SST = l.At.Sub(first)
			if !recvStart.IsZero() && recvEnd.IsZero() {
				recvEnd = l.At
			}
			break
		}
		switch {
		case st.Phase == "receiving":
			if recvStart.IsZero() {
				recvStart = l.At
			}
			s.Bytes = max(st.Total, st.Done)
		case !recvStart.IsZero() && recvEnd.IsZero():
			recvEnd = l.At
		}
	}
	if !recvEnd.IsZero() {
		s.Receive = recvEnd.Sub(recvStart)
	}
}

// MBps is the receiving rate in MB/s (10^6 bytes), 0 when unknown.
func (s *summary) MBps() float64 {
	if s.Receive <= 0 {
		return 0
	}
	return float64(s.Bytes) / 1e6 / s.Receive.Seconds()
}

// lockTime renders a lock to its log's resolution.
func lockTime(l donorlock.Lock) string {
	if l.Resolution < time.Second {
		return fmt.Sprintf("%.2f s", l.D.Seconds())
	}
	if l.D < l.Resolution {
		return "under 1 s"
	}
	return fmt.Sprintf("%.0f s", l.D.Seconds())
}

// String is the summary line.
func (s *summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "SUMMARY: %s joined by %s in %.1f s (start to READY=1)", s.Joiner, s.Method, s.Join.Seconds())
	if s.SST > 0 {
		fmt.Fprintf(&b, "; SST %.1f s", s.SST.Seconds())
	}
	if s.Bytes > 0 {
		fmt.Fprintf(&b, ", %.0f MB received", float64(s.Bytes)/1e6)
		if r := s.MBps(); r > 0 {
			fmt.Fprintf(&b, " in %.1f s at %.0f MB/s", s.Receive.Seconds(), r)
		}
	}
	if s.Prepare > 0 {
		fmt.Fprintf(&b, ", prepare %.1f s", s.Prepare.Seconds())
	}
	if s.FromStatus {
		b.WriteString(" (from STATUS=)")
	}
	if s.LockErr != nil {
		fmt.Fprintf(&b, "; donor %s lock time unknown: %v", s.Donor, s.LockErr)
	} else {
		fmt.Fprintf(&b, "; donor %s blocked writes for %s (%s in %s", s.Donor, lockTime(s.Lock), s.Lock.What, filepath.Base(s.Lock.Source))
		if s.Lock.Resolution >= time.Second {
			b.WriteString(", to the second")
		}
		b.WriteString(")")
	}
	return b.String()
}
