package galeratest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// markerEnv is set in every mariadbd's environment and so inherited by its
// SST scripts and their rsync, socat, mariadb-backup: it lets the harness find
// every descendant of a node even after it was reparented or moved itself to
// another session.
const markerEnv = "GS_TEST_NODE"

// spawn starts cmd from one OS thread that never exits. Pdeathsig is tied to
// the thread that forked the child, not to the process: started from an
// ordinary goroutine, the child could be killed whenever the runtime retires
// that thread.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnc = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawnc {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawnc <- spawnReq{cmd, done}
	return <-done
}

var (
	spawnOnce sync.Once
	spawnc    chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

// proc is one mariadbd run.
type proc struct {
	cmd    *exec.Cmd
	pid    int
	marker string
	done   chan struct{} // closed once the process and everything it left are gone
	err    error         // Wait's result, valid after done

	mu     sync.Mutex
	reaped bool // after this, pid may belong to someone else
}

// killGroup SIGKILLs the process group, unless the leader was reaped already
// and the group ID could name a stranger's group.
func (p *proc) killGroup() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reaped {
		syscall.Kill(-p.pid, syscall.SIGKILL)
	}
}

// watch waits for p to exit, then kills what it leaves behind: its process
// group and any process carrying its marker. Only then is it reaped, so its
// PID (and so the group ID) cannot be reused while we kill.
func (p *proc) watch() {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	p.killGroup()
	killMarked(p.marker, p.pid)
	// SIGKILLed members may still be tearing down (a big address space
	// takes a while), with no environment left to find them by.
	waitGroupGone(p.pid, 10*time.Second)
	p.mu.Lock()
	p.err = p.cmd.Wait()
	p.reaped = true
	p.mu.Unlock()
	close(p.done)
}

// killMarked SIGKILLs every process whose environment holds marker,
// except skip, until none is left, and waits (bounded) until each is gone
// or a zombie: a process being torn down may no longer show its environment.
func killMarked(marker string, skip int) {
	killed := map[int]bool{}
	for range 50 {
		n := 0
		for _, pid := range markedPIDs(marker) {
			if pid == skip {
				continue
			}
			syscall.Kill(pid, syscall.SIGKILL)
			killed[pid] = true
			n++
		}
		if n == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pid := range killed {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// markedPIDs lists live processes whose environment contains the exact
// entry marker (e.g. "GS_TEST_NODE=/var/tmp/gs-test/x/node1"), or, when marker
// ends in "/", any entry with that prefix. Zombies have no environment and
// are not listed.
func markedPIDs(marker string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	prefix := bytes.HasSuffix([]byte(marker), []byte("/"))
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.Equal(kv, []byte(marker)) || prefix && bytes.HasPrefix(kv, []byte(marker)) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// waitGroupGone waits until no process of group pgid is left but zombies.
func waitGroupGone(pgid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for len(groupMembers(pgid)) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// groupMembers lists the live, non-zombie processes of group pgid.
func groupMembers(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, pgrp, ok := procStat(pid); ok && state != 'Z' && pgrp == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	state, _, ok := procStat(pid)
	return ok && state != 'Z'
}

// procStat reads a process's state and process group from /proc.
func procStat(pid int) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// After the parenthesised name, which may hold spaces: state ppid pgrp ...
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 {
		return 0, 0, false
	}
	pgrp, _ = strconv.Atoi(f[2])
	return f[0][0], pgrp, true
}
