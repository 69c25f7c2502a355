package main

import (
	"context"
	"errors"
)

// Placeholder: replaced by the issue that builds "config".
func cmdConfig() *command {
	return &command{
		name:  "config",
		short: "(not built yet)",
		run: func(ctx context.Context, c *cli, args []string) error {
			return errors.New("config: not built yet")
		},
	}
}
