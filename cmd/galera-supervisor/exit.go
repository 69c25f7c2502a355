package main

import (
	"context"
	"errors"
)

// Exit codes of galera-supervisor's own commands. SST mode exits with errno
// values instead, as the server's SST contract requires.
const (
	exitOK      = 0
	exitFailure = 1 // generic failure; a unit may restart
	exitUsage   = 2 // bad command line
)

// exitCoder is implemented by errors that choose the process exit code.
type exitCoder interface{ ExitCode() int }

type usageError string

func (e usageError) Error() string { return string(e) }
func (usageError) ExitCode() int   { return exitUsage }

func exitCode(err error) int {
	if err == nil || errors.Is(err, context.Canceled) {
		return exitOK
	}
	var c exitCoder
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	return exitFailure
}
