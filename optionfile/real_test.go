package optionfile

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const realMyPrintDefaults = "/usr/bin/my_print_defaults"

// requireReal skips (or fails, with GS_TEST_REAL=1) when the real
// my_print_defaults is not there. It does not use supervisor/galeratest so
// that this package stays light.
func requireReal(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the real my_print_defaults; skipped under -short")
	}
	if _, err := os.Stat(realMyPrintDefaults); err != nil {
		if os.Getenv("GS_TEST_REAL") == "1" {
			t.Fatalf("GS_TEST_REAL=1 but %s is missing: %v", realMyPrintDefaults, err)
		}
		t.Skipf("%s missing: %v", realMyPrintDefaults, err)
	}
}

type diffCase struct {
	name string
	line int
	env  map[string]string
	args []string
}

var envToken = regexp.MustCompile(`^[A-Z_]+=`)

// readCases reads testdata/optionfiles/cases.txt; \xNN in a token is a byte.
func readCases(t *testing.T, path string) []diffCase {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []diffCase
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		c := diffCase{name: fields[0], line: line, env: map[string]string{}}
		rest := fields[1:]
		for len(rest) > 0 && envToken.MatchString(rest[0]) {
			k, v, _ := strings.Cut(rest[0], "=")
			c.env[k] = v
			rest = rest[1:]
		}
		for _, a := range rest {
			c.args = append(c.args, unescapeHex(t, a))
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

var hexEscape = regexp.MustCompile(`\\x[0-9a-fA-F]{2}`)

func unescapeHex(t *testing.T, s string) string {
	return hexEscape.ReplaceAllStringFunc(s, func(m string) string {
		b, err := strconv.ParseUint(m[2:], 16, 8)
		if err != nil {
			t.Fatal(err)
		}
		return string([]byte{byte(b)})
	})
}

// copyCorpus copies dir to dst, keeping symlinks, replacing @DIR@ in
// files with dst, and applying the modes listed in dir/modes.
func copyCorpus(t *testing.T, dir, dst string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		default:
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			data = bytes.ReplaceAll(data, []byte("@DIR@"), []byte(dst))
			return os.WriteFile(to, data, 0o644)
		}
	})
	if err != nil {
		t.Fatalf("copy corpus: %v", err)
	}
	modes, err := os.ReadFile(filepath.Join(dir, "modes"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(modes)), "\n") {
		m, name, _ := strings.Cut(l, " ")
		mode, err := strconv.ParseUint(m, 8, 32)
		if err != nil {
			t.Fatalf("modes: %q: %v", l, err)
		}
		if err := os.Chmod(filepath.Join(dst, name), fs.FileMode(mode)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dst, "emptyhome"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestRealMyPrintDefaults runs every case of testdata/optionfiles/cases.txt
// through the real my_print_defaults and through PrintDefaults (what
// "galera-supervisor config print" runs) and compares stdout byte for byte,
// the exit status, and whether each wrote to stderr.
func TestRealMyPrintDefaults(t *testing.T) {
	requireReal(t)
	src, err := filepath.Abs("../testdata/optionfiles")
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: the copy's path must not need quoting and stays short.
	root, err := os.MkdirTemp("", "gs-optionfile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	copyCorpus(t, src, root)
	t.Chdir(root)

	cases := readCases(t, filepath.Join(src, "cases.txt"))
	if len(cases) < 30 {
		t.Fatalf("only %d cases; the corpus needs at least 30", len(cases))
	}
	matched, printed := 0, 0
	for _, c := range cases {
		ok := t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"HOME": root + "/emptyhome", "MYSQL_HOME": "", "MARIADB_HOME": "", "MYSQL_GROUP_SUFFIX": ""}
			for k, v := range c.env {
				env[k] = strings.ReplaceAll(v, "@DIR@", root)
			}
			args := make([]string, len(c.args))
			for i, a := range c.args {
				args[i] = strings.ReplaceAll(a, "@DIR@", root)
			}

			// The real tool, with exactly this environment.
			cmd := exec.Command(realMyPrintDefaults, args...)
			cmd.Dir = root
			cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C"}
			for k, v := range env {
				if v != "" {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
			}
			var wantOut, wantErr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &wantOut, &wantErr
			wantStatus := 0
			err := cmd.Run()
			if wantOut.Len() > 0 {
				printed++
			}
			if err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatalf("run my_print_defaults: %v", err)
				}
				wantStatus = ee.ExitCode()
			}

			// Ours, in this process.
			for k, v := range env {
				if v == "" {
					t.Setenv(k, "")
					os.Unsetenv(k)
				} else {
					t.Setenv(k, v)
				}
			}
			var gotOut, gotErr bytes.Buffer
			gotStatus := 0
			perr := PrintDefaults(&gotOut, &gotErr, args)
			var se *StatusError
			switch {
			case errors.Is(perr, ErrNoGroups):
				t.Fatalf("case without groups: the real tool prints its own help")
			case errors.As(perr, &se):
				gotStatus = se.Status
				gotErr.WriteString(perr.Error() + "\n")
			case perr != nil:
				t.Fatalf("PrintDefaults: %v", perr)
			}

			t.Logf("cases.txt:%d: my_print_defaults %s", c.line, strings.Join(args, " "))
			if !bytes.Equal(gotOut.Bytes(), wantOut.Bytes()) {
				t.Errorf("stdout differs\n--- my_print_defaults\n%q\n--- ours\n%q", wantOut.String(), gotOut.String())
			}
			if gotStatus != wantStatus {
				t.Errorf("exit status %d, my_print_defaults %d (its stderr: %q; ours: %q)", gotStatus, wantStatus, wantErr.String(), gotErr.String())
			}
			if (gotErr.Len() == 0) != (wantErr.Len() == 0) {
				t.Errorf("stderr: my_print_defaults wrote %q, we wrote %q", wantErr.String(), gotErr.String())
			}
			// Our messages name the file and line where MariaDB's do.
			if m := regexp.MustCompile(`config file: (\S+) at line:? (\d+)`).FindStringSubmatch(wantErr.String()); m != nil {
				if want := m[1] + ":" + m[2] + ":"; !strings.Contains(gotErr.String(), want) {
					t.Errorf("our stderr %q does not name %s", gotErr.String(), want)
				}
			}
		})
		if ok {
			matched++
		}
	}
	t.Logf("%d of %d cases match my_print_defaults; %d printed options", matched, len(cases), printed)
	// A corpus where the real tool prints nothing would compare nothing.
	if printed < len(cases)/2 {
		t.Errorf("only %d of %d cases printed anything", printed, len(cases))
	}
}
