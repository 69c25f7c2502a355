package main

import (
	"context"
	"errors"
)

// Placeholder: replaced by the issue that builds "sst".
func cmdSST() *command {
	return &command{
		name:  "sst",
		short: "(not built yet)",
		run: func(ctx context.Context, c *cli, args []string) error {
			return errors.New("sst: not built yet")
		},
	}
}

func runSSTMethod(ctx context.Context, c *cli, method string, args []string) error {
	return errors.New("sst method " + method + ": not built yet")
}
