package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// probeSchema holds the table the lock probe writes to on the donor.
var probeSchema = []string{
	"CREATE DATABASE IF NOT EXISTS benchprobe",
	"CREATE TABLE IF NOT EXISTS benchprobe.p (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB",
	"INSERT IGNORE INTO benchprobe.p VALUES (1, 0)",
}

// lockProbe commits a tiny write on the donor every interval and keeps the
// longest time one write took. A write blocked by FLUSH TABLES WITH READ
// LOCK (or BACKUP STAGE BLOCK_COMMIT) waits until the lock goes, so the
// longest write is the longest time the donor refused writes; the method's
// own logs are not trusted for it.
type lockProbe struct {
	mu      sync.Mutex
	longest time.Duration
	at      time.Time
	top     []stall // the longest few, longest first
	writes  int
	errs    int
	lastErr error
}

// stall is one slow probe write.
type stall struct {
	at time.Time
	d  time.Duration
}

const topStalls = 5

func (p *lockProbe) record(d time.Duration, start time.Time, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.errs++
		p.lastErr = err
	} else {
		p.writes++
	}
	if d > p.longest {
		p.longest, p.at = d, start
	}
	if len(p.top) < topStalls || d > p.top[len(p.top)-1].d {
		i := sort.Search(len(p.top), func(i int) bool { return p.top[i].d < d })
		p.top = append(p.top[:i], append([]stall{{start, d}}, p.top[i:]...)...)
		if len(p.top) > topStalls {
			p.top = p.top[:topStalls]
		}
	}
}

// run writes until ctx ends. A write still blocked when ctx ends counts with
// the time it has waited so far.
func (p *lockProbe) run(ctx context.Context, db *sql.DB, every time.Duration) {
	conn, err := db.Conn(ctx)
	if err != nil {
		p.record(0, time.Now(), fmt.Errorf("probe connection: %w", err))
		return
	}
	defer conn.Close()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		start := time.Now()
		_, err := conn.ExecContext(ctx, "UPDATE benchprobe.p SET n = n + 1 WHERE id = 1")
		if ctx.Err() != nil {
			p.record(time.Since(start), start, nil)
			return
		}
		p.record(time.Since(start), start, err)
		if err != nil && errors.Is(err, sql.ErrConnDone) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// fill copies the longest stall into r; start is when the join began.
func (p *lockProbe) fill(r *Result, start time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r.LockProbeS = p.longest.Seconds()
	if !p.at.IsZero() {
		r.LockProbeAtS = p.at.Sub(start).Seconds()
	}
	r.ProbeStalls = r.ProbeStalls[:0]
	for _, s := range p.top {
		r.ProbeStalls = append(r.ProbeStalls, [2]float64{
			math.Round(s.at.Sub(start).Seconds()*1000) / 1000, math.Round(s.d.Seconds()*1000) / 1000})
	}
	r.ProbeWrites, r.ProbeErrors = p.writes, p.errs
}

// Donor log lines that bound the write lock. The server logs the first when
// the SST script asks for "flush tables"; the native methods and the stock
// scripts with [sst] time=1 log the release. The error log has 1 s
// resolution; WSREP_SST lines carry milliseconds.
var (
	reLockStart = regexp.MustCompile(`(?i)flushing tables for SST|flush tables with read lock`)
	reLockEnd   = regexp.MustCompile(`(?i)tables unlocked|unlock tables|released? (the )?(global )?read lock|read lock released|resuming|continue`)
	// mariadb-backup's own log (1 s resolution): commits are blocked from
	// asking for BLOCK_COMMIT until BACKUP STAGE END has run.
	reBackupStart = regexp.MustCompile(`Starting BACKUP STAGE BLOCK_COMMIT`)
	reBackupEnd   = regexp.MustCompile(`All tables unlocked|Executing BACKUP STAGE END`)

	reLogTime = regexp.MustCompile(`^(?:\[\d+\] )?(\d{4}-\d{2}-\d{2} +\d{1,2}:\d{2}:\d{2})`)
	reSSTTime = regexp.MustCompile(`\((\d{8} \d{2}:\d{2}:\d{2}\.\d{3})\)\s*$`)
)

// lineTime returns a log line's timestamp: the WSREP_SST "(YYYYMMDD
// HH:MM:SS.mmm)" suffix when present, else the line's date prefix (the
// server's, or mariadb-backup's after its "[NN] " thread tag).
func lineTime(line string) (time.Time, bool) {
	if m := reSSTTime.FindStringSubmatch(line); m != nil {
		t, err := time.ParseInLocation("20060102 15:04:05.000", m[1], time.Local)
		return t, err == nil
	}
	if m := reLogTime.FindStringSubmatch(line); m != nil {
		t, err := time.ParseInLocation("2006-01-02 15:04:05", strings.Join(strings.Fields(m[1]), " "), time.Local)
		return t, err == nil
	}
	return time.Time{}, false
}

// logLockSpan finds, in the donor's error log written during one join, the
// time from the server flushing tables for the SST to the first later line
// that says the lock went. It returns -1 when the log shows no such pair.
func logLockSpan(r io.Reader) float64 { return logSpan(r, reLockStart, reLockEnd) }

// backupLockSpan does the same for a mariadb-backup.backup.log.
func backupLockSpan(r io.Reader) float64 { return logSpan(r, reBackupStart, reBackupEnd) }

func logSpan(r io.Reader, startRe, endRe *regexp.Regexp) float64 {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var start, last time.Time
	for sc.Scan() {
		line := sc.Text()
		t, ok := lineTime(line)
		if ok {
			last = t
		}
		switch {
		case start.IsZero():
			if ok && startRe.MatchString(line) {
				start = t
			}
		case endRe.MatchString(line) && !startRe.MatchString(line):
			if !ok {
				t = last
			}
			return t.Sub(start).Seconds()
		}
	}
	return -1
}
