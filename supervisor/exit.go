package supervisor

import "fmt"

// Exit codes of "galera-supervisor run", chosen so that a unit's Restart=
// and RestartPreventExitStatus= can tell a node worth restarting from one
// that needs a human.
//
//	code  name                  meaning                                         restart?
//	0     ExitOK                stopped on request; mariadbd exited cleanly     -
//	1     ExitFailure           internal or unexpected failure                  yes
//	2     ExitConfig            bad command line or option files, datadir lock  no (RestartPreventExitStatus)
//	3     ExitRecovery          mariadbd --wsrep-recover failed                 no
//	4     ExitSST               the node died while joining by SST              no, or with StartLimitBurst=
//	5     ExitMariadbd          mariadbd exited or died on its own              yes
//	6     ExitBootstrapRefused  --wsrep-new-cluster but safe_to_bootstrap: 0    no
//	7     ExitStopTimeout       mariadbd ignored SIGTERM for the stop timeout   -
//
// A unit should set RestartPreventExitStatus=2 3 4 6 (a failed SST then does
// not loop; "systemctl restart" still retries it on purpose).
const (
	ExitOK               = 0
	ExitFailure          = 1
	ExitConfig           = 2
	ExitRecovery         = 3
	ExitSST              = 4
	ExitMariadbd         = 5
	ExitBootstrapRefused = 6
	ExitStopTimeout      = 7
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
