package sst

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeMethod lets a test script one role.
type fakeMethod struct {
	joiner func(ctx context.Context, s *Session) error
	donor  func(ctx context.Context, s *Session) error
}

func (f fakeMethod) Joiner(ctx context.Context, s *Session) error { return f.joiner(ctx, s) }
func (f fakeMethod) Donor(ctx context.Context, s *Session) error  { return f.donor(ctx, s) }

var fake = &fakeMethod{}

func init() {
	Register("fake-test", fakeMethod{
		joiner: func(ctx context.Context, s *Session) error { return fake.joiner(ctx, s) },
		donor:  func(ctx context.Context, s *Session) error { return fake.donor(ctx, s) },
	})
}

func runFake(t *testing.T, ctx context.Context, argv ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = Run(ctx, "fake-test", argv, Config{Stdout: &o, Stderr: &e, PreviousSSTWait: 200 * time.Millisecond,
		// Archiving is TestArchive*'s: none into the machine's /tmp here.
		Options: func(*Args) Options { return MapOptions{"sst": {"x": "1", "sst-log-archive": "0"}} }})
	return o.String(), e.String(), err
}

func TestRunJoiner(t *testing.T) {
	dd := t.TempDir()
	fake.joiner = func(ctx context.Context, s *Session) error {
		for _, f := range []string{InProgressFile, PIDFile} {
			if _, err := os.Stat(filepath.Join(dd, f)); err != nil {
				return fmt.Errorf("%s missing during the SST: %v", f, err)
			}
		}
		if s.Option("x", "") != "1" || s.Datadir != dd || s.Env.Auth != os.Getenv("WSREP_SST_OPT_AUTH") {
			return fmt.Errorf("session %+v", s)
		}
		s.Log.Info("hello log")
		if err := s.Proto.Ready("127.0.0.1:4444/fake"); err != nil {
			return err
		}
		return s.Proto.Coordinates(State{UUID: "e1060d8c-a7e1-11ef-9a39-0e5cc7e5c2b4", Seqno: 9, Domain: "0"})
	}
	out, errOut, err := runFake(t, context.Background(), "--role", "joiner", "--address", "127.0.0.1", "--datadir", dd+"/", "--parent", fmt.Sprint(os.Getpid()))
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, errOut)
	}
	if out != "ready 127.0.0.1:4444/fake\ne1060d8c-a7e1-11ef-9a39-0e5cc7e5c2b4:9 0\n" {
		t.Errorf("stdout %q", out)
	}
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if !strings.HasPrefix(l, "WSREP_SST: [INFO] ") {
			t.Errorf("stderr line %q", l)
		}
	}
	if !strings.Contains(errOut, "hello log") {
		t.Errorf("log line missing:\n%s", errOut)
	}
	for _, f := range []string{InProgressFile, PIDFile} {
		if _, err := os.Stat(filepath.Join(dd, f)); err == nil {
			t.Errorf("%s left behind", f)
		}
	}
}

func TestRunErrors(t *testing.T) {
	dd := t.TempDir()
	fake.donor = func(ctx context.Context, s *Session) error { return Errorf(ENOSPC, "disk full at %s", "x") }
	_, errOut, err := runFake(t, context.Background(), "--address", "h:1/x", "--datadir", dd)
	if ExitCode(err) != int(ENOSPC) || !strings.Contains(errOut, "WSREP_SST: [ERROR] SST failed ") || !strings.Contains(errOut, `sst_exit=28 sst_error="disk full at x"`) {
		t.Errorf("method error: exit %d, stderr:\n%s", ExitCode(err), errOut)
	}
	_, _, err = runFake(t, context.Background(), "--address", "h:1/x")
	if ExitCode(err) != int(EINVAL) {
		t.Errorf("no datadir: exit %d (%v)", ExitCode(err), err)
	}
	_, _, err = runFake(t, context.Background(), "--address", "h:1/x", "--datadir", filepath.Join(dd, "missing"))
	if ExitCode(err) != int(ENOENT) {
		t.Errorf("missing datadir: exit %d (%v)", ExitCode(err), err)
	}
	if err := Run(context.Background(), "no-such-method", nil, Config{}); ExitCode(err) != int(EINVAL) {
		t.Errorf("unknown method: %v", err)
	}

	// Cancellation is a failure, not a clean exit.
	ctx, cancel := context.WithCancel(context.Background())
	fake.donor = func(ctx context.Context, s *Session) error { cancel(); <-ctx.Done(); return ctx.Err() }
	_, _, err = runFake(t, ctx, "--address", "h:1/x", "--datadir", dd)
	if ExitCode(err) != int(EINTR) || errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: exit %d, %v", ExitCode(err), err)
	}
}

func TestRunParentGone(t *testing.T) {
	dd := t.TempDir()
	parent := exec.Command("sleep", "30")
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	fake.joiner = func(ctx context.Context, s *Session) error {
		s.Proto.Ready("127.0.0.1:4444/fake")
		parent.Process.Kill()
		parent.Wait()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return errors.New("parent's death not noticed")
		}
	}
	_, errOut, err := runFake(t, context.Background(), "--role", "joiner", "--address", "h", "--datadir", dd, "--parent", fmt.Sprint(parent.Process.Pid))
	if ExitCode(err) != int(EINTR) || !strings.Contains(errOut, "terminated unexpectedly") {
		t.Errorf("exit %d, %v\n%s", ExitCode(err), err, errOut)
	}
	if _, err := os.Stat(filepath.Join(dd, InProgressFile)); err == nil {
		t.Error("sst_in_progress left behind")
	}
}
