package galeratest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartSyslog runs Debian's rsyslogd in the foreground on a private
// socket (writable by mysql), writing "<facility>.<severity> <tag><msg>"
// lines to a file; it is stopped by PID when the test ends.
func StartSyslog(t testing.TB) (socket, out string) {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		if os.Getenv("GS_TEST_REAL") == "1" {
			t.Fatal("rsyslogd missing (make deps installs rsyslog)")
		}
		t.Skip("rsyslogd missing")
	}
	dir, err := os.MkdirTemp("", "gs-rsyslog-")
	mustT(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	mustT(t, os.Chmod(dir, 0o755))
	socket, out = filepath.Join(dir, "log"), filepath.Join(dir, "out.log")
	conf := filepath.Join(dir, "rsyslog.conf")
	mustT(t, os.WriteFile(conf, []byte(fmt.Sprintf(`global(workDirectory=%q)
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket=%q CreatePath="off")
template(name="line" type="string" string="%%syslogfacility-text%%.%%syslogseverity-text%% %%syslogtag%%%%msg%%\n")
*.* action(type="omfile" file=%q template="line")
`, dir, socket, out)), 0o644))
	cmd := exec.Command(bin, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	mustT(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if fi, err := os.Stat(socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd made no socket %s in 10 s", socket)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustT(t, os.Chmod(socket, 0o666))
	return socket, out
}

func mustT(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// GrepFile returns the lines of path holding substr, joined by newlines.
func GrepFile(path, substr string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			out = append(out, sc.Text())
		}
	}
	return strings.Join(out, "\n")
}
