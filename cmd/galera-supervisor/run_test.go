package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/supervisor"
)

// TestRunConfigExit: a bad ExecStart line or option file exits with
// EX_CONFIG, which the units list in RestartPreventExitStatus=; 2 is left
// to the Go runtime's crashes, which must restart.
func TestRunConfigExit(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.cnf")
	bad := filepath.Join(t.TempDir(), "bad.cnf")
	os.WriteFile(bad, []byte("[mysqld]\nno-equals-here\n[broken\n"), 0o644)
	for _, args := range [][]string{
		{"--no-such-flag"},
		{"stray-argument"},
		{"--sst-stall-timeout=0"},
		{"--sst-stall-timeout=-20s"},
		{"--sst-stall-timeout=soon"},
		{"--defaults-file=" + missing},
		{"--defaults-file=" + bad},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"galera-supervisor", "run"}, args...), &out, &errb)
		if code := exitCode(err); code != supervisor.ExitConfig {
			t.Errorf("run %s: exit %d (%v), want %d", strings.Join(args, " "), code, err, supervisor.ExitConfig)
		}
	}
	units, _ := filepath.Glob("../../units/*.service")
	dropIns, _ := filepath.Glob("../../units/*/*.conf")
	for _, u := range append(units, dropIns...) {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "ExecStart=/usr/bin/galera-supervisor run") {
			continue // the guard drop-in runs no supervisor
		}
		if !strings.Contains(string(b), "RestartPreventExitStatus=3 4 6 78\n") {
			t.Errorf("%s: RestartPreventExitStatus= does not list the codes of help run", u)
		}
	}
}
