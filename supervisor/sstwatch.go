package supervisor

import (
	"log/slog"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
)

// Watching SSTs: progress events, SST processes, a hung abort.

// liveness phases are those without byte counts: any event is progress.
func livenessPhase(p string) bool {
	return p == progress.PhasePreparing || p == progress.PhaseVerifying || p == progress.PhaseMoving
}

// progressEvent takes an SST's progress: an event the method sent, or,
// measured, one the supervisor made of what it saw (sstmeasure.go).
func (r *runner) progressEvent(e progress.Event, measured bool) {
	s := r.s
	now := time.Now()
	if r.view.meter.Late(e) {
		// A tick sent before the SST's next phase, read after it.
		return
	}
	if !measured {
		r.measure.methodAt = now
	}
	r.view.measured = measured
	prev := r.view.meter.Last().Phase
	first := r.view.lastProg.IsZero()
	advanced := r.view.meter.Observe(e, now)
	r.view.lastProg, r.view.progRole = now, e.Role
	r.sstEvent(e, now)
	if first || e.Phase != prev {
		advanced = true
		attrs := []any{slog.String("sst_role", e.Role), slog.String("sst_method", e.Method), slog.String("sst_phase", e.Phase), slog.String("sst_peer", sst.PeerAddr(e.Peer))}
		if e.Delta && e.Total > 0 && (e.Phase == progress.PhaseVerifying || e.Phase == progress.PhaseMoving) {
			attrs = append(attrs, progress.DeltaAttrs(e.Done, e.Total)...)
		}
		s.log.Info("SST phase", attrs...)
	}
	if livenessPhase(e.Phase) {
		advanced = true
	}
	if e.Role == "joiner" {
		r.joinerSST()
		switch e.Phase {
		case progress.PhaseDone:
			r.sstJoinerDone = true
			r.keepOwnFiles()
		case progress.PhaseFailed:
			r.sstFailed = e.Err
			if r.sstFailedAt.IsZero() {
				// When the SST said so, not when we read it: a stop
				// requested in between did not cause the failure.
				r.sstFailedAt = now
				if !e.Time.IsZero() && e.Time.Before(now) {
					r.sstFailedAt = e.Time
				}
			}
			s.log.Error("SST joiner failed", slog.String("sst_role", e.Role), slog.String("sst_method", e.Method),
				slog.String("sst_peer", sst.PeerAddr(e.Peer)), slog.String("sst_error", e.Err))
		}
	}
	if advanced && !r.ready && !r.view.stopping && e.Phase != progress.PhaseFailed && r.keep.Advanced(now) {
		s.notify(notify.ExtendTimeout(r.keep.Window))
	}
	r.say(e.Phase != prev)
}

// killHungAbort kills mariadbd when its joiner SST failed and it has not
// aborted within the grace: a joiner whose SST failed never recovers, and
// a hung one would hold the unit in "activating" until the start timeout,
// or in "deactivating" for the stop timeout when a stop cancelled the SST
// (the grace is then at most stopAbortGrace; stopCutGrace counted from
// the stop when the SST was a stock method's, which reports no failure:
// the stop ends it). Until its SST is in place mariadbd has opened no
// data, so a SIGKILL loses nothing; a mysqldump joiner has, but holds half
// a dump its next start replaces by a full SST.
func (r *runner) killHungAbort(pid int, stopStart time.Time) {
	g, failedAt, why := r.s.cfg.AbortGrace, r.sstFailedAt, "its SST failed"
	if r.view.stopping {
		g = min(g, stopAbortGrace)
		if failedAt.IsZero() && r.joining() {
			g, failedAt, why = min(g, stopCutGrace), stopStart, "the stop cut its SST short"
		}
	}
	if r.ready || r.abortKilled || failedAt.IsZero() || time.Since(failedAt) < g {
		return
	}
	r.abortKilled = true
	r.s.log.Warn("mariadbd has not aborted: SIGKILL to its process group", slog.Int("pid", pid), slog.Duration("grace", g), slog.String("reason", why))
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// stopCutGrace bounds a joiner's abort after a stop cut its stock SST
// short: the script ends at the stop's SIGTERM, mariadbd within a second
// after, or it hangs; the unit's stop is the tail of a stalled start's
// failure, which should come within TimeoutStartSec+15 s of the stall.
const stopCutGrace = 5 * time.Second

// scanSST notes an SST method running below mariadbd, and measures a
// donor's.
func (r *runner) scanSST(pid int) {
	p, ok := sstProcess(pid)
	role, method := p.role, p.method
	if ok && role == string(sst.Donor) {
		r.donorScan(p)
	}
	if ok == r.view.sstRunning && role == r.view.sstRole {
		return
	}
	if ok {
		r.s.log.Info("SST process running", slog.Any("sst_role", role), slog.String("sst_method", method))
		if role == "joiner" && !r.ready {
			r.joinerSST()
		}
	} else if r.view.sstRunning {
		r.s.log.Info("SST process ended", slog.Any("sst_role", r.view.sstRole), slog.String("sst_method", r.view.sstMethod))
		if r.view.sstRole == "joiner" {
			r.sstJoinerEnded = true
			r.keepOwnFiles()
			r.measuredDone()
		} else {
			r.donorEnded()
		}
	}
	r.view.sstRunning, r.view.sstRole, r.view.sstMethod = ok, role, method
	r.say(true)
}

// lastProgress handles the events sent before mariadbd exited: its SST's
// failure, sent just before, decides the exit code.
func (r *runner) lastProgress() {
	if r.progress == nil {
		return
	}
	if err := r.syncProgress(); err != nil {
		r.s.log.Warn("SST progress: cannot read the events sent so far", slog.Any("error", err))
	}
	for {
		select {
		case e, ok := <-r.progress:
			if !ok {
				return
			}
			r.progressEvent(e, false)
		default:
			return
		}
	}
}

// joining: a joiner SST began and the node has not yet been ready.
func (r *runner) joining() bool { return !r.ready && r.sstJoiner && !r.sstJoinerDone }
