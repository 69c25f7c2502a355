package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
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

// lockProbe commits a tiny write on the donor every interval and keeps how
// long each took. A write blocked by FLUSH TABLES WITH READ LOCK (or by the
// provider pause of BACKUP STAGE BLOCK_DDL..END) waits until the lock goes, so the longest write while
// the donor serves the SST is how long it refused writes; the method's own
// logs are not trusted for it.
type lockProbe struct {
	mu      sync.Mutex
	writes  []stall // every write, in order
	errs    int
	lastErr error
}

// stall is one probe write: when it began and how long it took.
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
		return
	}
	p.writes = append(p.writes, stall{start, d})
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

// fill copies the probe's findings into r; start is when the join began.
// The lock is the longest write that began while the donor was in the
// Donor/Desynced state (from, to): the joiner's joining the group and its
// flow control while it catches up stall the donor's commits too, but they
// are not the SST's lock. With a zero window every write counts.
func (p *lockProbe) fill(r *Result, start, from, to time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rel := func(t time.Time) float64 { return math.Round(t.Sub(start).Seconds()*1000) / 1000 }
	var any, in stall
	for _, w := range p.writes {
		if w.d > any.d {
			any = w
		}
		if (from.IsZero() || !w.at.Before(from)) && (to.IsZero() || !w.at.After(to)) && w.d > in.d {
			in = w
		}
	}
	r.LockProbeS, r.ProbeMaxAnyS = in.d.Seconds(), any.d.Seconds()
	if !in.at.IsZero() {
		r.LockProbeAtS = rel(in.at)
	}
	if !any.at.IsZero() {
		r.ProbeMaxAnyAtS = rel(any.at)
	}
	if !from.IsZero() {
		r.DonorFromS, r.DonorToS = rel(from), rel(to)
	}
	top := append([]stall(nil), p.writes...)
	sort.SliceStable(top, func(i, j int) bool { return top[i].d > top[j].d })
	r.ProbeStalls = nil
	for _, s := range top[:min(len(top), topStalls)] {
		r.ProbeStalls = append(r.ProbeStalls, [2]float64{rel(s.at), math.Round(s.d.Seconds()*1000) / 1000})
	}
	r.ProbeWrites, r.ProbeErrors = len(p.writes), p.errs
}

// donorWatch polls the donor's wsrep_local_state_comment (SHOW STATUS is not
// held up by its locks) and keeps when it was Donor/Desynced.
type donorWatch struct {
	mu       sync.Mutex
	from, to time.Time
	last     time.Time // last poll that saw the donor state
}

func (w *donorWatch) run(ctx context.Context, db *sql.DB, every time.Duration) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	t := time.NewTicker(every)
	defer t.Stop()
	prev := time.Now()
	for {
		var name, state string
		err := conn.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'wsrep_local_state_comment'").Scan(&name, &state)
		now := time.Now()
		if err == nil {
			w.observe(state, prev, now)
		}
		prev = now
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// observe records a state seen at now; the state changed after prev at the
// earliest, so the window opens there.
func (w *donorWatch) observe(state string, prev, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	donor := strings.HasPrefix(state, "Donor")
	switch {
	case donor && w.from.IsZero():
		w.from, w.last = prev, now
	case donor && w.to.IsZero():
		w.last = now
	case !donor && !w.from.IsZero() && w.to.IsZero():
		w.to = now
	}
}

// window returns when the donor was Donor/Desynced (zeros: never seen).
func (w *donorWatch) window() (from, to time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.from.IsZero() {
		return time.Time{}, time.Time{}
	}
	if w.to.IsZero() {
		return w.from, w.last
	}
	return w.from, w.to
}
