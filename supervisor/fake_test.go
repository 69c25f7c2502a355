package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/schema"

	"github.com/galera-supervisor/galera-supervisor/notify"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// The test binary impersonates mariadbd when GS_FAKE_MARIADBD names a
// behaviour (the os/exec helper-process pattern). It talks to the
// supervisor as mariadbd does: notifications on NOTIFY_SOCKET, progress on
// GALERA_SUPERVISOR_PROGRESS, and its wsrep state in GS_FAKE_DIR/state,
// which the tests' fake health check reads instead of SQL.
func TestMain(m *testing.M) {
	if mode := os.Getenv("GS_FAKE_MARIADBD"); mode != "" {
		os.Exit(fakeMariadbd(mode, os.Args[1:]))
	}
	code := m.Run()
	galeratest.RemoveBinaries()
	os.Exit(code)
}

const fakePosition = "8fa998c1-e59b-11f1-82b9-9e02990180a0:42,0-1-42"

func fakeMariadbd(mode string, args []string) int {
	dir := os.Getenv("GS_FAKE_DIR")
	// Atomic, so that the tests' readers never see a half-written file.
	write := func(name, s string) {
		tmp := filepath.Join(dir, name+".tmp")
		os.WriteFile(tmp, []byte(s), 0o644)
		os.Rename(tmp, filepath.Join(dir, name))
	}
	appendf := func(name, format string, a ...any) {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, format, a...)
			f.Close()
		}
	}
	if mode == "sleeper" {
		signal.Ignore(syscall.SIGTERM, syscall.SIGHUP)
		time.Sleep(time.Hour)
		return 0
	}
	if slices.Contains(args, "--wsrep-recover") {
		appendf("recover-argv", "%s\n", strings.Join(args, " "))
		if mode == "recover-hang" {
			time.Sleep(time.Minute) // SIGTERM's default action ends it
		}
		if mode == "recover-zero" {
			// A freshly installed datadir (mariadb-install-db).
			fmt.Fprintln(os.Stderr, "2026-01-01 0 [Note] WSREP: Recovered position: 00000000-0000-0000-0000-000000000000:-1")
			return 0
		}
		if mode == "recover-fail" {
			fmt.Fprintln(os.Stderr, "2026-01-01 0 [ERROR] InnoDB: Plugin initialization aborted")
			return 1
		}
		fmt.Fprintln(os.Stderr, "2026-01-01 0 [Note] InnoDB: log sequence number 44404")
		fmt.Fprintln(os.Stderr, "2026-01-01 0 [Note] WSREP: Recovered position: "+fakePosition)
		return 0
	}
	write("argv", strings.Join(args, "\n"))
	write("options-env", os.Getenv(schema.EnvOptions))
	n := notify.FromEnv()
	say := func(s string) {
		if err := n.Notify(s); err != nil {
			fmt.Fprintln(os.Stderr, "fake mariadbd:", err)
		}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
	if mode == "ignore-term" {
		signal.Ignore(syscall.SIGTERM)
	}
	switch mode {
	case "crash":
		time.Sleep(100 * time.Millisecond)
		return 1
	case "sst-fail", "sst-fail-hang", "sst-progress":
		say("STATUS=WSREP state transfer (role joiner) ongoing...\nEXTEND_TIMEOUT_USEC=60000000\n")
		r := progress.FromEnv()
		var done int64
		for i := 0; i < 8; i++ {
			done += 1 << 20
			r.Report(progress.Event{Role: "joiner", Method: "fake", Phase: progress.PhaseReceiving, Done: done, Total: 16 << 20})
			time.Sleep(50 * time.Millisecond)
		}
		// The monitor's 30 s message comes while the transfer is stalled.
		say("STATUS=WSREP state transfer (role joiner) ongoing...\nEXTEND_TIMEOUT_USEC=60000000\n")
		write("stalled", "")
		if mode == "sst-progress" {
			time.Sleep(stockStall) // see TestSSTKeepaliveFollowsProgress
		} else {
			time.Sleep(time.Second)
		}
		if mode != "sst-progress" {
			r.Report(progress.Event{Role: "joiner", Method: "fake", Phase: progress.PhaseFailed, Done: done, Err: "donor went away"})
			time.Sleep(50 * time.Millisecond)
			fmt.Fprintln(os.Stderr, "WSREP: gcs_group_handle_join_msg():1225: Will never receive state. Need to abort.")
			if mode == "sst-fail-hang" {
				// As 10.11 does at times: every thread waits, SIGTERM too.
				signal.Ignore(syscall.SIGTERM)
				select {}
			}
			return 1
		}
		r.Report(progress.Event{Role: "joiner", Method: "fake", Phase: progress.PhaseDone, Done: done, Total: done})
		say("STATUS=WSREP state transfer (role joiner) completed.\n")
	case "stock-sst", "stock-sst-unmeasurable":
		// A stock method: a wsrep_sst_rsync process runs, no progress
		// events come, bytes land in the datadir.
		self, _ := os.Executable()
		script := &exec.Cmd{Path: self, Args: []string{"wsrep_sst_rsync", "--role", "joiner", "--address", "127.0.0.1:4444/rsync_sst"},
			Env: append(os.Environ(), "GS_FAKE_MARIADBD=sleeper")}
		if err := script.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer script.Wait()
		defer script.Process.Kill()
		datadir := filepath.Join(dir, "data")
		time.Sleep(300 * time.Millisecond) // the supervisor's first scan: what was there
		f, _ := os.Create(filepath.Join(datadir, "t.ibd"))
		for range 8 {
			f.Write(make([]byte, 1<<20))
			time.Sleep(100 * time.Millisecond)
		}
		f.Close()
		if mode == "stock-sst-unmeasurable" {
			// Nothing the supervisor can read: the datadir is no directory.
			os.Rename(datadir, datadir+".away")
			os.WriteFile(datadir, nil, 0o644)
			defer func() { os.Remove(datadir); os.Rename(datadir+".away", datadir) }()
			// The test says when the supervisor has logged that it cannot
			// measure: a sleep is too short on a loaded machine.
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if _, err := os.Stat(filepath.Join(dir, "unmeasurable-seen")); err == nil {
					break
				}
			}
		}
		write("stalled", "")
		// The monitor's 30 s message comes while the transfer is stalled.
		say("STATUS=WSREP state transfer (role joiner) ongoing...\nEXTEND_TIMEOUT_USEC=60000000\n")
		// Long enough for the test to tell a late last sample (bytes
		// written before the stall, seen after it by a supervisor the
		// machine's load delayed) from an extension during the stall.
		time.Sleep(stockStall)
		script.Process.Kill()
		script.Wait()
		time.Sleep(300 * time.Millisecond) // the supervisor sees the script end
		say("STATUS=WSREP state transfer (role joiner) completed.\n")
	case "stock-sst-stop-hang":
		// A stock joiner stopped mid-SST that hangs in its abort, as
		// 10.11 does at times: its script reports nothing.
		self, _ := os.Executable()
		script := &exec.Cmd{Path: self, Args: []string{"wsrep_sst_rsync", "--role", "joiner"},
			Env: append(os.Environ(), "GS_FAKE_MARIADBD=sleeper")}
		if err := script.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		time.Sleep(300 * time.Millisecond)
		write("in-sst", "")
		signal.Ignore(syscall.SIGTERM)
		select {}
	case "sst-burst":
		// Twenty events sent 200 ms apart at 100 MB/s, as the SST stamped
		// them, but read by the supervisor in one burst.
		r := progress.FromEnv()
		t0 := time.Now().Add(-4 * time.Second)
		for i := range 20 {
			r.Report(progress.Event{Role: "joiner", Method: "fake", Phase: progress.PhaseReceiving,
				Done: int64(i+1) * 20e6, Total: 4e9, Time: t0.Add(time.Duration(i) * 200 * time.Millisecond)})
		}
		// Several of the supervisor's STATUS ticks (one a second), even on
		// a loaded machine, before the SST ends.
		time.Sleep(3 * time.Second)
		r.Report(progress.Event{Role: "joiner", Method: "fake", Phase: progress.PhaseDone, Done: 400e6, Total: 400e6})
	case "sst-late":
		// A progress tick of the transfer that reaches the supervisor after
		// the joiner went on to verify and swap.
		r := progress.FromEnv()
		ev := func(phase string, done int64) {
			r.Report(progress.Event{Role: "joiner", Method: "fake", Phase: phase, Done: done, Total: 600 << 20})
			time.Sleep(20 * time.Millisecond)
		}
		ev(progress.PhaseWaiting, 0)
		for i := int64(1); i <= 6; i++ {
			ev(progress.PhaseReceiving, i*100<<20)
		}
		ev(progress.PhaseVerifying, 0)
		ev(progress.PhaseMoving, 0)
		ev(progress.PhaseReceiving, 600<<20)
		time.Sleep(500 * time.Millisecond)
		write("late-sent", "")
		ev(progress.PhaseDone, 600<<20)
	case "sst-stop", "sst-stop-hang", "sst-fail-slow":
		say("STATUS=WSREP state transfer (role joiner) ongoing...\n")
		r := progress.FromEnv()
		r.Report(progress.Event{Role: "joiner", Method: "fake", Phase: progress.PhaseReceiving, Done: 1 << 20, Total: 16 << 20})
		if mode == "sst-fail-slow" {
			// The SST fails on its own; mariadbd is slow to abort.
			r.Report(progress.Event{Role: "joiner", Method: "fake", Phase: progress.PhaseFailed, Done: 1 << 20, Err: "donor went away"})
		}
		write("in-sst", "")
		<-sigs
		if mode != "sst-fail-slow" {
			// The SST process, SIGTERM'd with mariadbd's group, reports
			// it was cancelled; mariadbd then aborts as on a failed SST.
			r.Report(progress.Event{Role: "joiner", Method: "fake", Phase: progress.PhaseFailed, Err: "joiner cancelled the SST"})
		}
		if mode == "sst-stop-hang" {
			// As 10.11 does at times: every thread waits, SIGTERM too.
			signal.Ignore(syscall.SIGTERM)
			select {}
		}
		time.Sleep(100 * time.Millisecond)
		fmt.Fprintln(os.Stderr, "WSREP: SST failed: 125 (Operation canceled). Aborting.")
		return 1
	case "unready-abort":
		// Never joins; aborts when told to stop, as 10.11 may.
		write("waiting-term", "")
		<-sigs
		abort()
	case "grandchildren":
		self, _ := os.Executable()
		// One in mariadbd's process group (like an SST script) and one
		// that left it (setsid, like a daemonised helper).
		for i, setsid := range []bool{false, true} {
			c := exec.Command(self)
			c.Env = append(os.Environ(), "GS_FAKE_MARIADBD=sleeper")
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
			if err := c.Start(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			appendf("grandchildren", "%d\n", c.Process.Pid)
			_ = i
		}
	}
	// InnoDB start: its own extension, relayed.
	say("EXTEND_TIMEOUT_USEC=120000000\nSTATUS=InnoDB: Starting crash recovery\n")
	write("state", "Joined")
	say("READY=1\nSTATUS=Taking your SQL requests now...\n")
	appendf("events", "child-ready %d\n", time.Now().UnixNano())
	go func() {
		time.Sleep(400 * time.Millisecond)
		appendf("events", "synced %d\n", time.Now().UnixNano())
		write("state", "Synced")
	}()
	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			appendf("events", "sighup %d\n", time.Now().UnixNano())
		case syscall.SIGTERM:
			if mode == "ignore-term" {
				continue
			}
			if mode == "abort-on-term" {
				abort()
			}
			say("STOPPING=1\nSTATUS=Shutdown in progress\n")
			time.Sleep(100 * time.Millisecond)
			return 0
		}
	}
	return 0
}

// abort ends the process by SIGABRT, as mariadbd's abort() does: the Go
// runtime would turn its own SIGABRT into exit status 2, a shell does not.
func abort() {
	syscall.Exec("/bin/sh", []string{"sh", "-c", "kill -ABRT $$"}, os.Environ())
	os.Exit(1)
}
