package main

import (
	"bytes"
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

func configRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"galera-supervisor", "config"}, args...), &out, &errb)
	if err != nil { // as main prints it
		errb.WriteString(err.Error() + "\n")
	}
	return out.String(), errb.String(), exitCode(err)
}

func TestConfigPrint(t *testing.T) {
	f := filepath.Join(t.TempDir(), "my.cnf")
	os.WriteFile(f, []byte("[mysqld]\nport = 3306\n[mysqld.2]\nport = '3307' # node 2\n[galera]\nwsrep_on\n"), 0o644)
	out, _, code := configRun(t, "print", "--defaults-file="+f, "--defaults-group-suffix=.2", "--mysqld")
	if want := "--port=3306\n--port=3307\n--wsrep_on\n"; out != want || code != 0 {
		t.Errorf("got %q, %d; want %q, 0", out, code, want)
	}
	if _, _, code := configRun(t, "print", "--defaults-file="+f+".missing", "mysqld"); code != 2 {
		t.Errorf("missing file: exit %d, want 2 as my_print_defaults", code)
	}
	if _, _, code := configRun(t, "print", "mysqld", "--defaults-file="+f); code != 7 {
		t.Errorf("late --defaults-file: exit %d, want 7 as my_print_defaults", code)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.cnf")
	os.WriteFile(good, []byte("[mysqld]\nwsrep_sst_method = native-copy\n[sst]\nrlimit = 100M\nencrypt = 0\ncompresor = lz4\nstreamfmt = xbstream\n"), 0o644)
	out, _, code := configRun(t, "check", "--defaults-file="+good)
	if want := good + ":6: warning: [sst] unknown option 'compresor' (did you mean 'compressor'?)\n" +
		good + ":7: warning: [sst] streamfmt: native methods send their own checksummed stream over their own TCP connections; streamfmt and transferfmt configure the stock mariabackup script's mbstream/xbstream/tar and socat/nc\n"; out != want || code != 0 {
		t.Errorf("warnings only: got %q, exit %d; want %q, 0", out, code, want)
	}
	bad := filepath.Join(dir, "bad.cnf")
	os.WriteFile(bad, []byte("[sst]\nencrypt = 9\n"), 0o644)
	out, stderr, code := configRun(t, "check", "--defaults-file="+bad)
	if !strings.HasPrefix(out, bad+":2: error: [sst] encrypt=9: want 0 to 4") || code != 1 {
		t.Errorf("bad value: got %q (stderr %q), exit %d; want %s:2 and exit 1", out, stderr, code, bad)
	}
	broken := filepath.Join(dir, "broken.cnf")
	os.WriteFile(broken, []byte("encrypt = 9\n"), 0o644)
	if _, stderr, code := configRun(t, "check", "--defaults-file="+broken); code != 1 || !strings.Contains(stderr, broken+":1:") {
		t.Errorf("unreadable file: stderr %q, exit %d; want %s:1 and exit 1", stderr, code, broken)
	}
	if _, _, code := configRun(t, "check", "extra-arg"); code != 2 {
		t.Errorf("bad command line: exit %d, want 2", code)
	}
	peers := filepath.Join(dir, "peers.cnf")
	os.WriteFile(peers, []byte("[galera-supervisor]\npeers = 10.0.0.2:4569\nbootstrap-wait = 5 min\nbotstrap-wait = 5m\nauto-bootstrap = maybe\n"), 0o644)
	out, _, code = configRun(t, "check", "--defaults-file="+peers)
	if want := peers + ":3: error: [galera-supervisor] bootstrap-wait=5 min: not a duration (seconds, or a number with a unit: 300s, 5m, 12h, 30d)\n" +
		peers + ":4: warning: [galera-supervisor] unknown option 'botstrap-wait' (did you mean 'bootstrap-wait'?)\n" +
		peers + ":5: error: [galera-supervisor] auto-bootstrap=maybe: want 0 or 1 (or on/off, yes/no, true/false)\n"; out != want || code != 1 {
		t.Errorf("bad peer option: got %q, exit %d; want %q, 1", out, code, want)
	}
	web := filepath.Join(dir, "web.cnf")
	os.WriteFile(web, []byte("[galera-supervisor]\nhttp-address = 9200\navailable-when-donor = maybe\n"), 0o644)
	out, _, code = configRun(t, "check", "--defaults-file="+web)
	if want := web + ":2: error: [galera-supervisor] http-address=9200: want host:port\n" +
		web + ":3: error: [galera-supervisor] available-when-donor=maybe: want 0 or 1 (or on/off, yes/no, true/false)\n"; out != want || code != 1 {
		t.Errorf("bad endpoint option: got %q, exit %d; want %q, 1", out, code, want)
	}
	os.WriteFile(web, []byte("[galera-supervisor]\nhttp-address = :9200\nhttp-verify-client = on\n"), 0o644)
	out, _, code = configRun(t, "check", "--defaults-file="+web)
	if want := web + ":3: error: [galera-supervisor] http-verify-client=on: needs http-tls = on\n"; out != want || code != 1 {
		t.Errorf("endpoint options that do not go together: got %q, exit %d; want %q, 1", out, code, want)
	}

	// Readability as the unit's User=: the server's user by default, also
	// when the check runs as root; --as-user picks another.
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("0123456789abcdef0123"), 0o600) // ours alone
	sec := filepath.Join(dir, "sec.cnf")
	os.WriteFile(sec, []byte("[mysqld]\nuser = mysql\n[galera-supervisor]\npeers = 10.0.0.2:4569\npeer-secret-file = "+secret+"\n"), 0o644)
	if _, err := user.Lookup("mysql"); err != nil {
		t.Skipf("no mysql user here: %v", err)
	}
	out, _, code = configRun(t, "check", "--defaults-file="+sec)
	if want := sec + ":5: error: [galera-supervisor] peer-secret-file=" + secret + ": mysql cannot read " + secret; !strings.HasPrefix(out, want) || code != 1 {
		t.Errorf("secret unreadable by mysql: got %q, exit %d; want %q..., 1", out, code, want)
	}
	if out, _, code = configRun(t, "check", "--defaults-file="+sec, "--as-user="+me(t)); out != "" || code != 0 {
		t.Errorf("--as-user=%s: got %q, exit %d; want nothing, 0", me(t), out, code)
	}
}

func me(t *testing.T) string {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}
