package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SetSubreaper makes this process the reaper of its orphaned descendants:
// an SST process or mariadb-backup whose parent died re-parents to us, not
// to PID 1, so that we can reap and kill it.
func SetSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	return nil
}

// procStat is the part of /proc/<pid>/stat we use.
type procStat struct {
	PID, PPID, PGID int
	State           byte // R S D T t Z X ...
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The command name may hold spaces and parentheses: skip to the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := bytes.Fields(b[i+2:])
	if len(f) < 3 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	ppid, _ := strconv.Atoi(string(f[1]))
	pgid, _ := strconv.Atoi(string(f[2]))
	return procStat{PID: pid, PPID: ppid, PGID: pgid, State: f[0][0]}, nil
}

// allStats reads every process's stat.
func allStats() []procStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := readStat(pid); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// descendants lists every live descendant of pid, parents before children.
func descendants(pid int) []procStat {
	all := allStats()
	kids := map[int][]procStat{}
	for _, s := range all {
		kids[s.PPID] = append(kids[s.PPID], s)
	}
	var out []procStat
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, k := range kids[p] {
			out = append(out, k)
			queue = append(queue, k.PID)
		}
	}
	return out
}

// stoppedOrGone reports whether pid is not running: gone, a zombie, or
// stopped (SIGSTOP, ptrace) — a hung node as far as the watchdog goes.
func stoppedOrGone(pid int) error {
	s, err := readStat(pid)
	if err != nil {
		return fmt.Errorf("mariadbd (pid %d) is gone", pid)
	}
	switch s.State {
	case 'T', 't':
		return fmt.Errorf("mariadbd (pid %d) is stopped", pid)
	case 'Z', 'X', 'x':
		return fmt.Errorf("mariadbd (pid %d) has exited", pid)
	}
	return nil
}

// reapOrphans waits for our zombie children other than those in keep:
// orphans re-parented to us as subreaper.
func reapOrphans(keep map[int]bool) (reaped []int) {
	self := os.Getpid()
	for _, s := range allStats() {
		if s.PPID != self || keep[s.PID] || s.State != 'Z' {
			continue
		}
		var ws syscall.WaitStatus
		if p, err := syscall.Wait4(s.PID, &ws, syscall.WNOHANG, nil); err == nil && p == s.PID {
			reaped = append(reaped, p)
		}
	}
	return reaped
}

// killLeftovers ends every process that outlived mariadbd: its process
// group (the SST scripts share it), then anything still below us, first
// with SIGTERM, after grace with SIGKILL, reaping what re-parented to us.
// keep lists our own children that are not the node's (none in practice).
func killLeftovers(pgid int, keep map[int]bool, grace time.Duration, log *slog.Logger) {
	self := os.Getpid()
	left := func() []procStat {
		var out []procStat
		for _, s := range descendants(self) {
			if keep[s.PID] || s.State == 'Z' {
				continue
			}
			out = append(out, s)
		}
		return out
	}
	signalAll := func(sig syscall.Signal) int {
		n := 0
		if pgid > 0 {
			if syscall.Kill(-pgid, sig) == nil {
				n++
			}
		}
		for _, s := range left() {
			if syscall.Kill(s.PID, sig) == nil {
				n++
			}
		}
		return n
	}
	if ps := left(); len(ps) > 0 {
		for _, s := range ps {
			log.Warn("process outlived mariadbd; stopping it", slog.Int("pid", s.PID), slog.Int("ppid", s.PPID), slog.Int("pgid", s.PGID))
		}
	}
	if signalAll(syscall.SIGTERM) > 0 {
		deadline := time.Now().Add(grace)
		for time.Now().Before(deadline) && (len(left()) > 0 || groupAlive(pgid)) {
			reapOrphans(keep)
			time.Sleep(50 * time.Millisecond)
		}
		for i := 0; i < 20 && (len(left()) > 0 || groupAlive(pgid)); i++ {
			signalAll(syscall.SIGKILL)
			reapOrphans(keep)
			time.Sleep(50 * time.Millisecond)
		}
	}
	reapOrphans(keep)
}

// groupAlive reports whether process group pgid has a live member.
func groupAlive(pgid int) bool {
	if pgid <= 0 {
		return false
	}
	err := syscall.Kill(-pgid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return false
	}
	// Zombies still count for kill(0); look closer.
	for _, s := range allStats() {
		if s.PGID == pgid && s.State != 'Z' {
			return true
		}
	}
	return false
}

// sstProc is an SST method's process below mariadbd.
type sstProc struct {
	pid          int
	role, method string
	address      string // --address: the joiner's, as the donor's script got it
}

// sstProcess looks below pid for a running SST method (wsrep_sst_<method>,
// or the "sh -c wsrep_sst_<method> ..." mariadbd spawns it with) and
// returns it. It is how an SST is seen when the method reports no progress
// and mariadbd's monitor has not spoken yet (it first speaks after 30 s).
func sstProcess(pid int) (sstProc, bool) {
	for _, s := range descendants(pid) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(s.PID) + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) >= 3 && filepath.Base(args[0]) == "sh" && args[1] == "-c" {
			args = strings.Fields(args[2])
		}
		for i, a := range args {
			name, found := strings.CutPrefix(filepath.Base(a), "wsrep_sst_")
			if !found || i > 1 { // argv[0], or argv[1] of an interpreter
				continue
			}
			if name == "common" {
				continue
			}
			p := sstProc{pid: s.PID, role: "joiner", method: name}
			for j := range args[:len(args)-1] {
				switch args[j] {
				case "--role":
					p.role = strings.Trim(args[j+1], "'\"")
				case "--address":
					p.address = strings.Trim(args[j+1], "'\"")
				}
			}
			return p, true
		}
	}
	return sstProc{}, false
}
