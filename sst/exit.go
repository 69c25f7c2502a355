package sst

import (
	"context"
	"errors"
	"fmt"
	"syscall"
)

// Exit codes. The server turns an SST process's exit status into an errno
// (wsrep_utils.cc process::wait) and hands its negation to Galera, so every
// failure exits with the errno that best names its cause.
const (
	ENOENT       = syscall.ENOENT       // 2: datadir, file or tool missing
	ENOMEM       = syscall.ENOMEM       // 12
	EBUSY        = syscall.EBUSY        // 16: port taken
	EMFILE       = syscall.EMFILE       // 24: open-files limit too low for the datadir
	EINVAL       = syscall.EINVAL       // 22: bad arguments or configuration
	ENOSPC       = syscall.ENOSPC       // 28: joiner disk too small
	EPIPE        = syscall.EPIPE        // 32: transfer failed
	EPROTO       = syscall.EPROTO       // 71: peer spoke something else
	ECONNREFUSED = syscall.ECONNREFUSED // 111
	EALREADY     = syscall.EALREADY     // 114: a previous SST still runs
	ETIMEDOUT    = syscall.ETIMEDOUT    // 110
	EINTR        = syscall.EINTR        // 4: interrupted (parent gone, signal)
	EACCES       = syscall.EACCES       // 13: certificate or permission refused
)

// Error is an SST failure that carries the errno the process exits with.
type Error struct {
	Errno syscall.Errno
	Err   error
}

// Errorf returns an *Error with errno and a formatted cause; %w works.
func Errorf(errno syscall.Errno, format string, args ...any) error {
	return &Error{Errno: errno, Err: fmt.Errorf(format, args...)}
}

// WithErrno wraps err with errno unless err already carries one.
func WithErrno(errno syscall.Errno, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Errno: errno, Err: err}
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ExitCode is the errno, as the SST contract wants.
func (e *Error) ExitCode() int { return int(e.Errno) }

// ExitCode maps any error to the SST process's exit status: 0 for nil,
// the carried errno for *Error, EINTR for a cancelled context (signal or
// parent gone), an errno found in the chain, and EPIPE otherwise, the
// stock scripts' code for a failed transfer.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.ExitCode()
	}
	if errors.Is(err, context.Canceled) {
		return int(EINTR)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) && errno != 0 && errno < 256 {
		return int(errno)
	}
	return int(EPIPE)
}
