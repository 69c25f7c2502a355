package main

import (
	"context"
	"errors"
)

// Placeholder: replaced by the issue that builds "recover".
func cmdRecover() *command {
	return &command{
		name:  "recover",
		short: "(not built yet)",
		run: func(ctx context.Context, c *cli, args []string) error {
			return errors.New("recover: not built yet")
		},
	}
}
