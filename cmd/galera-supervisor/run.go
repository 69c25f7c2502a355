package main

import (
	"context"
	"errors"
)

// Placeholder: replaced by the issue that builds "run".
func cmdRun() *command {
	return &command{
		name:  "run",
		short: "(not built yet)",
		run: func(ctx context.Context, c *cli, args []string) error {
			return errors.New("run: not built yet")
		},
	}
}
