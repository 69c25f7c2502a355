package main

import (
	"context"
	"errors"
)

// Placeholder: replaced by the issue that builds "status".
func cmdStatus() *command {
	return &command{
		name:  "status",
		short: "(not built yet)",
		run: func(ctx context.Context, c *cli, args []string) error {
			return errors.New("status: not built yet")
		},
	}
}
