package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at link time: -ldflags "-X main.version=..."
var version = "dev"

func cmdVersion() *command {
	return &command{
		name:  "version",
		short: "print the version and build information",
		run: func(ctx context.Context, c *cli, args []string) error {
			if len(args) > 0 {
				return usageError("version takes no arguments")
			}
			rev := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						rev = " " + s.Value
					}
				}
			}
			fmt.Fprintf(c.stdout, "galera-supervisor %s%s %s %s/%s\n", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
