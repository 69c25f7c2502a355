package sst

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/schema"

	"github.com/galera-supervisor/galera-supervisor/optionfile"
)

// TestRunOptionSnapshot: with $GALERA_SUPERVISOR_OPTIONS naming a snapshot
// of the same option files, the SST takes its options from it, not from
// the files (which hold a newer, refused edit); without it, or with one of
// other files, or an unreadable one, it reads the files.
func TestRunOptionSnapshot(t *testing.T) {
	dir := t.TempDir()
	cnf := filepath.Join(dir, "my.cnf")
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(cnf, "[sst]\ntransfer-streams = 3\n[mysqld]\ndatadir = /x\n")
	good, err := optionfile.Load(optionfile.Sources{DefaultsFile: cnf})
	if err != nil {
		t.Fatal(err)
	}
	b, err := good.MarshalSnapshot(schema.SnapshotGroups()...)
	if err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(dir, "options.json")
	write(snap, string(b))
	other := filepath.Join(dir, "other.json")
	otherSet, err := optionfile.Load(optionfile.Sources{DefaultsFile: snap + "-missing"})
	if err == nil {
		t.Fatal("a missing --defaults-file loaded")
	}
	ob, _ := otherSet.MarshalSnapshot(schema.SnapshotGroups()...)
	write(other, string(ob))
	write(cnf, "[sst]\ntransfer-streams = 5\n") // the files move on

	dd := t.TempDir()
	for _, c := range []struct {
		name, env, want, log string
	}{
		{"snapshot", snap, "3 " + cnf + ":2", "options: the supervisor's last good option files sst_method=fake-test sst_role=donor option_snapshot=" + snap},
		{"no snapshot", "", "5 " + cnf + ":2", ""},
		{"other files", other, "5 " + cnf + ":2", "was read from other option files than this SST's; reading them instead"},
		{"unreadable", filepath.Join(dir, "gone.json"), "5 " + cnf + ":2", `option snapshot unreadable; reading the option files instead sst_method=fake-test sst_role=donor option_snapshot=` + dir + `/gone.json error="read option snapshot $GALERA_SUPERVISOR_OPTIONS: open ` + dir + `/gone.json: no such file or directory"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got string
			fake.donor = func(ctx context.Context, s *Session) error {
				fo, ok := s.Options.(*FileOptions)
				if !ok {
					return fmt.Errorf("options of type %T", s.Options)
				}
				o, _ := fo.Set.Lookup(SSTGroups, "transfer-streams")
				got = o.Value + " " + o.Pos()
				return nil
			}
			var out, errOut bytes.Buffer
			err := Run(context.Background(), "fake-test", []string{"--address", "h:1/x", "--datadir", dd, "--defaults-file", cnf},
				Config{Stdout: &out, Stderr: &errOut, PreviousSSTWait: 200 * time.Millisecond,
					Getenv: func(k string) string {
						if k == schema.EnvOptions {
							return c.env
						}
						return ""
					}})
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, errOut.String())
			}
			if got != c.want {
				t.Errorf("transfer-streams %q, want %q", got, c.want)
			}
			if c.log != "" && !strings.Contains(errOut.String(), c.log) {
				t.Errorf("log lacks %q:\n%s", c.log, errOut.String())
			}
			if c.log == "" && strings.Contains(errOut.String(), "snapshot") {
				t.Errorf("log mentions a snapshot:\n%s", errOut.String())
			}
		})
	}
}
