package main

import (
	"context"
	"errors"
)

// Placeholder: replaced by the issue that builds "bootstrap".
func cmdBootstrap() *command {
	return &command{
		name:  "bootstrap",
		short: "(not built yet)",
		run: func(ctx context.Context, c *cli, args []string) error {
			return errors.New("bootstrap: not built yet")
		},
	}
}
