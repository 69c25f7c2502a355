package supervisor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
)

// TestRunRefusesBadOptions: run does not start with an [sst] or
// [galera-supervisor] value config check calls an error: it exits with
// ExitConfig naming every such value's file:line, before mariadbd.
func TestRunRefusesBadOptions(t *testing.T) {
	cnf := filepath.Join(t.TempDir(), "my.cnf")
	testutil.Must(t, os.WriteFile(cnf, []byte("[sst]\nrlimit = abc\ntransfer-streams = 0\n[galera-supervisor]\nbootstrap-wait = 5m\nbootstrap-wait = soon\n"), 0o644))
	s := New(Config{LoadOptions: LoadOptionFiles(Defaults{File: cnf}, nil), Mariadbd: "/nonexistent/mariadbd", RuntimeDir: t.TempDir()})
	err := s.Run(context.Background())
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != ExitConfig {
		t.Fatalf("Run = %v, want exit %d", err, ExitConfig)
	}
	for _, want := range []string{cnf + ":2: error: [sst] rlimit=abc", cnf + ":3: error: [sst] transfer-streams=0: want 1 to 64", cnf + ":6: error: [galera-supervisor] bootstrap-wait=soon"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Run = %v\nwant it to name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "bootstrap-wait=5m") {
		t.Errorf("5m refused: %v", err)
	}
}
