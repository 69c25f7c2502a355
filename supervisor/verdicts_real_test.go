package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/optionfile"
	"github.com/galera-supervisor/galera-supervisor/schema"
	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// TestRealOptionVerdicts drives every option of the schema, each with a
// valid, an out-of-range and a malformed value where its type has them,
// through "config check" (the built binary), the live guard (readEdit,
// what a reload decides) and a real start: for [sst], a native-copy
// joiner started by the built binary as mariadbd starts it (accepted once
// it prints "ready", refused when it exits 22 EINVAL); for
// [galera-supervisor], which no SST reads, run's start (loadOptions, then
// the peer configuration as startCoordination reads it). The three
// verdicts must agree on every row.
func TestRealOptionVerdicts(t *testing.T) {
	bin := filepath.Join(galeratest.Binaries(t), "galera-supervisor")
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123"), 0o600); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "archive")
	rows := 0
	for _, o := range append(schema.Options(schema.SST), schema.Options(schema.Supervisor)...) {
		for _, smp := range samples(o, dir, secret) {
			rows++
			name := fmt.Sprintf("%s/%s=%s", o.Name, smp.label, smp.value)
			cnf := filepath.Join(dir, fmt.Sprintf("row%d.cnf", rows))
			body := "[mysqld]\nwsrep_sst_method = native-copy\n[sst]\nsst-log-archive-dir = " + archive + "\n" +
				"[galera-supervisor]\npeers = 127.0.0.1:4570\n[" + string(o.Group) + "]\n" + o.Name + " = " + smp.value + "\n"
			if err := os.WriteFile(cnf, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			check := configCheckVerdict(t, bin, cnf)
			guard := guardVerdict(t, cnf)
			var start verdict
			if o.Group == schema.SST {
				start = joinerVerdict(t, bin, cnf, filepath.Join(dir, fmt.Sprintf("dd%d", rows)))
			} else {
				start = runStartVerdict(t, cnf)
			}
			if check.ok != guard.ok || check.ok != start.ok {
				t.Errorf("%s: config check %v, live guard %v, start %v", name, check, guard, start)
			} else if want := smp.label == "valid"; check.ok != want {
				t.Errorf("%s: all three say %v (config check: %s), want %v", name, check.ok, check.why, want)
			}
		}
	}
	t.Logf("%d rows, three verdicts each", rows)
}

type sample struct{ label, value string }

// samples are an option's values: valid, out of range (beyond its range,
// outside its set, or a value native methods refuse) and malformed, each
// where its type has one. A text option takes any value.
func samples(o *schema.Option, dir, secret string) []sample {
	valid := o.Default
	var out []sample
	add := func(label, v string) {
		if v != "" {
			out = append(out, sample{label, v})
		}
	}
	switch o.Kind {
	case schema.Bool:
		add("out-of-range", "2")
		add("malformed", "maybe")
		valid = "0"
		if len(o.RefusedValues) > 0 {
			valid = "1"
		}
	case schema.Int, schema.Size, schema.Rate:
		show := func(n int64) string { return strconv.FormatInt(n, 10) }
		if o.Kind != schema.Int {
			show = schema.FormatSize
		}
		if o.Max < 1<<62 {
			add("out-of-range", show(o.Max+1))
		} else {
			add("out-of-range", show(o.Min-1))
		}
		add("malformed", "12x")
		if valid == "" {
			valid = show(o.Min)
		}
		if len(o.RefusedValues) > 0 {
			add("out-of-range", o.RefusedValues[0])
		}
	case schema.Duration:
		add("out-of-range", strconv.FormatInt(o.Max+1, 10)+"s")
		add("malformed", "5 min")
		valid = "5m"
	case schema.Enum:
		add("out-of-range", "nope")
		add("malformed", "a=b")
		if valid == "" {
			valid = o.Values[0]
		}
	case schema.SocatOpts:
		add("malformed", "keepidle=x")
		valid = "nodelay,keepidle=30"
	case schema.HostPort:
		add("out-of-range", "127.0.0.1:70000")
		add("malformed", "nope")
		valid = "127.0.0.1:4569"
	case schema.HostPorts:
		add("out-of-range", "127.0.0.1:70000")
		add("malformed", "127.0.0.1:4570,nope")
		valid = "127.0.0.1:4570,127.0.0.2:4570"
	case schema.CipherList:
		add("malformed", "HIGH:!aNULL")
		valid = "ECDHE-RSA-AES128-GCM-SHA256"
	case schema.Path:
		valid = map[bool]string{true: dir, false: secret}[o.Written]
		if o.Name == "sst-syslog-socket" {
			valid = "/dev/log"
		}
	case schema.Text:
		valid = "x"
		if o.Name == "progress" { // a file name: not the test's working directory
			valid = filepath.Join(dir, "progress")
		}
	}
	return append([]sample{{"valid", valid}}, out...)
}

type verdict struct {
	ok  bool
	why string
}

func (v verdict) String() string {
	if v.ok {
		return "accepts"
	}
	return "refuses (" + v.why + ")"
}

func configCheckVerdict(t *testing.T, bin, cnf string) verdict {
	t.Helper()
	out, err := exec.Command(bin, "config", "check", "--defaults-file="+cnf, "--as-user=root").CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return verdict{true, ""}
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return verdict{false, strings.TrimSpace(string(out))}
	}
	t.Fatalf("config check: %v\n%s", err, out)
	return verdict{}
}

// guardVerdict is what a reload decides, from a configuration in force
// without the option.
func guardVerdict(t *testing.T, cnf string) verdict {
	t.Helper()
	base := filepath.Join(filepath.Dir(cnf), "base.cnf")
	os.WriteFile(base, []byte("[mysqld]\nwsrep_sst_method = native-copy\n"), 0o644)
	old, err := optionfile.Load(optionfile.Sources{DefaultsFile: base})
	if err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{cfg: Config{LoadOptions: LoadOptionFiles(Defaults{File: cnf}, nil)}}
	if _, bad := s.readEdit(context.Background(), old); len(bad) > 0 {
		return verdict{false, strings.Join(bad, "; ")}
	}
	return verdict{true, ""}
}

// runStartVerdict is run's start for [galera-supervisor]: loadOptions,
// then the peer configuration as startCoordination reads it.
func runStartVerdict(t *testing.T, cnf string) verdict {
	t.Helper()
	s := &Supervisor{cfg: Config{LoadOptions: LoadOptionFiles(Defaults{File: cnf}, nil)}}
	o, err := s.loadOptions(context.Background())
	if err == nil {
		look := func(m map[string]string) quorum.Lookup {
			return func(name string) (string, bool) { v, ok := m[Key(name)]; return v, ok }
		}
		_, err = quorum.ConfigFrom(look(o.Supervisor), look(o.Server), look(o.SST))
	}
	if err != nil {
		return verdict{false, err.Error()}
	}
	return verdict{true, ""}
}

// joinerVerdict starts a native-copy joiner as mariadbd would and stops
// it once it is ready.
func joinerVerdict(t *testing.T, bin, cnf, datadir string) verdict {
	t.Helper()
	if err := os.MkdirAll(datadir, 0o750); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "sst", "--method", "native-copy", "--role", "joiner", "--address", "127.0.0.1:0",
		"--datadir", datadir, "--defaults-file", cnf, "--parent", strconv.Itoa(os.Getpid()))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "GALERA_SUPERVISOR_PROGRESS=", schema.EnvOptions+"=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "ready ") {
			ready = true
			cmd.Process.Signal(os.Interrupt) // ours: the joiner we started
			break
		}
	}
	err = cmd.Wait()
	if ready {
		return verdict{true, ""}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 22 {
		return verdict{false, strings.TrimSpace(stderr.String())}
	}
	t.Fatalf("joiner neither ready nor refused (EINVAL): %v\n%s", err, stderr.String())
	return verdict{}
}
