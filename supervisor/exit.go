package supervisor

import "fmt"

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
