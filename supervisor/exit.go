package supervisor

import (
	"fmt"
	"log/slog"
	"os/exec"
	"syscall"
	"time"
)

// Exit codes of "galera-supervisor run", chosen so that a unit's Restart=
// and RestartPreventExitStatus= can tell a node worth restarting from one
// that needs a human.
//
//	code  name                  meaning                                         restart?
//	0     ExitOK                stopped on request, however mariadbd ended      -
//	1     ExitFailure           internal or unexpected failure                  yes
//	3     ExitRecovery          mariadbd --wsrep-recover failed                 no
//	4     ExitSST               the node died while joining by SST              no, or with StartLimitBurst=
//	5     ExitMariadbd          mariadbd exited or died on its own              yes
//	6     ExitBootstrapRefused  --wsrep-new-cluster but safe_to_bootstrap: 0    no
//	7     ExitStopTimeout       mariadbd ignored SIGTERM for the stop timeout   -
//	78    ExitConfig            bad command line or option files, datadir lock  no (RestartPreventExitStatus)
//
// A stop on request is 0 unless the stop timed out (7), the joiner's SST
// had failed before it (4), or a node that was ready crashed (5).
//
// A unit should set RestartPreventExitStatus=3 4 6 78 (a failed SST then
// does not loop; "systemctl restart" still retries it on purpose). A
// configuration error is EX_CONFIG of sysexits.h rather than 2, because 2
// is how the Go runtime ends after a panic or SIGABRT, and a crash must
// restart.
const (
	ExitOK               = 0
	ExitFailure          = 1
	ExitRecovery         = 3
	ExitSST              = 4
	ExitMariadbd         = 5
	ExitBootstrapRefused = 6
	ExitStopTimeout      = 7
	ExitConfig           = 78
)

// ExitError is an error that chooses the process's exit code.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the process exit code for e.
func (e *ExitError) ExitCode() int { return e.Code }

func exitErr(code int, format string, args ...any) error {
	return &ExitError{Code: code, Err: fmt.Errorf(format, args...)}
}

func (r *runner) exited(cmd *exec.Cmd, stopStart time.Time, keep map[int]bool) error {
	s := r.s
	ps := cmd.ProcessState
	pid := cmd.Process.Pid
	// Whatever mariadbd left behind: SST scripts in its group, orphans
	// re-parented to us. None may outlive it.
	delete(keep, pid)
	killLeftovers(pid, keep, 5*time.Second, s.log)
	ws, _ := ps.Sys().(syscall.WaitStatus)
	how := ps.String()
	if r.view.stopping {
		switch {
		case ws.Signaled() && ws.Signal() == syscall.SIGKILL && time.Since(stopStart) >= s.cfg.StopTimeout:
			return exitErr(ExitStopTimeout, "mariadbd (pid %d) did not stop within %v after SIGTERM: killed", pid, s.cfg.StopTimeout)
		case ps.Success():
			s.log.Info("mariadbd stopped cleanly", slog.Int("pid", pid))
			return nil
		case !r.sstFailedAt.IsZero() && r.sstFailedAt.Before(stopStart):
			// The SST had failed on its own: the stop only came first.
			return exitErr(ExitSST, "mariadbd (pid %d) %s while stopping, after its SST had failed: %s", pid, how, r.sstFailed)
		case !r.ready:
			// mariadbd aborts a join cut short by the stop: 10.11 takes
			// a cancelled SST for done, then dies of SIGABRT.
			s.log.Info("mariadbd ended while stopping: the stop aborted its join", slog.Int("pid", pid), slog.String("status", how),
				slog.Bool("sst_joiner", r.sstJoiner), slog.Bool("killed_hung_in_abort", r.abortKilled))
			return nil
		case ws.Signaled() && crashSignal(ws.Signal()):
			return exitErr(ExitMariadbd, "mariadbd (pid %d) crashed while stopping: %s", pid, how)
		}
		s.log.Warn("mariadbd ended while stopping", slog.Int("pid", pid), slog.String("status", how))
		return nil
	}
	if r.abandoned != "" {
		return exitErr(ExitMariadbd, "mariadbd (pid %d) killed: %s; a restart decides again", pid, r.abandoned)
	}
	// Died before Synced after an SST began for it: the SST failed, or the
	// node could not start from what it received. Either way restarting
	// would only run another full SST, hence its own code.
	if r.joining() || !r.ready && r.sstFailed != "" {
		msg := " while joining by SST"
		if r.sstJoinerEnded {
			msg = " after its SST ended, before Synced"
		}
		if r.sstFailed != "" {
			msg += ": " + r.sstFailed
		}
		return exitErr(ExitSST, "mariadbd (pid %d) %s%s", pid, how, msg)
	}
	if ps.Success() && r.ready {
		s.log.Info("mariadbd exited on its own with status 0 (SHUTDOWN?)", slog.Int("pid", pid))
		return nil
	}
	return exitErr(ExitMariadbd, "mariadbd (pid %d) %s", pid, how)
}

// crashSignal tells a crash from an end by request (SIGTERM, SIGKILL).
func crashSignal(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGILL, syscall.SIGFPE, syscall.SIGABRT:
		return true
	}
	return false
}
