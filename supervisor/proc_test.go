package supervisor

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestSSTProcessSeen(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sstProcess(os.Getpid()); ok {
		t.Fatal("SST process seen before any runs")
	}
	// As mariadbd runs it: sh -c "wsrep_sst_<method> --role 'donor' ...".
	cmd := &exec.Cmd{
		Path: self,
		Args: []string{"wsrep_sst_native-copy", "--role", "'donor'", "--address", "'127.0.0.1:4444'"},
		Env:  append(os.Environ(), "GS_FAKE_MARIADBD=sleeper"),
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, ok := sstProcess(os.Getpid())
		if ok {
			if p.role != "donor" || p.method != "native-copy" || p.address != "127.0.0.1:4444" || p.pid != cmd.Process.Pid {
				t.Fatalf("got %+v, want donor native-copy to 127.0.0.1:4444, pid %d", p, cmd.Process.Pid)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("SST process not seen")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReadStatOddName(t *testing.T) {
	// A command name with spaces and parentheses must not shift the fields.
	odd := filepath.Join(t.TempDir(), "x) (S 1 2")
	if err := os.Symlink("/bin/sleep", odd); err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{Path: odd, Args: []string{odd, "5"}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	st, err := readStat(cmd.Process.Pid)
	if err != nil || st.PPID != os.Getpid() || st.PGID != syscall.Getpgrp() {
		t.Fatalf("readStat: %+v, %v", st, err)
	}
}
