package main

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// proc is one process as /proc shows it. Start (field 22, in clock ticks
// since boot) tells a PID from a later process given the same number.
type proc struct {
	PID, PPID int
	Comm      string
	Start     uint64
	Args      []string
}

// readProc reads /proc/PID/stat and cmdline; comm may hold spaces and
// parentheses, so the fields are counted from the last ')'.
func readProc(pid int) (proc, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc{}, err
	}
	p, err := parseStat(b)
	if err != nil {
		return proc{}, err
	}
	if c, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil {
		p.Args = strings.Split(strings.TrimRight(string(c), "\x00"), "\x00")
	}
	return p, nil
}

func parseStat(b []byte) (proc, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return proc{}, fmt.Errorf("no comm in %.40q", b)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:open])))
	if err != nil {
		return proc{}, fmt.Errorf("bad pid in %.40q", b)
	}
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 {
		return proc{}, fmt.Errorf("pid %d: %d fields in stat", pid, len(f)+2)
	}
	p := proc{PID: pid, Comm: string(b[open+1 : end])}
	if f[0] == "Z" {
		return proc{}, fmt.Errorf("pid %d: a zombie", pid)
	}
	if p.PPID, err = strconv.Atoi(f[1]); err != nil {
		return proc{}, fmt.Errorf("pid %d: ppid: %w", pid, err)
	}
	if p.Start, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return proc{}, fmt.Errorf("pid %d: start time: %w", pid, err)
	}
	return p, nil
}

// allProcs reads every live process.
func allProcs() []proc {
	ents, _ := os.ReadDir("/proc")
	var ps []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := readProc(pid); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// tree returns root and its descendants, depth first, each with its depth.
func tree(ps []proc, root int) (out []proc, depth []int) {
	kids := map[int][]proc{}
	var top *proc
	for i := range ps {
		kids[ps[i].PPID] = append(kids[ps[i].PPID], ps[i])
		if ps[i].PID == root {
			top = &ps[i]
		}
	}
	if top == nil {
		return nil, nil
	}
	var walk func(p proc, d int)
	walk = func(p proc, d int) {
		out, depth = append(out, p), append(depth, d)
		k := kids[p.PID]
		sort.Slice(k, func(i, j int) bool { return k[i].PID < k[j].PID })
		for _, c := range k {
			walk(c, d+1)
		}
	}
	walk(*top, 0)
	return out, depth
}

// describe is a process as the tree shows it: its name, and for the
// supervisor and the server the arguments that matter.
func describe(p proc) string {
	name := p.name()
	var keep []string
	for _, a := range p.Args[min(1, len(p.Args)):] {
		switch {
		case a == "run", a == "--wsrep-new-cluster", strings.HasPrefix(a, "--role"), a == "donor", a == "joiner",
			strings.HasPrefix(a, "--wsrep_start_position"), strings.HasPrefix(a, "--backup"), strings.HasPrefix(a, "--prepare"):
			keep = append(keep, a)
		}
	}
	if len(keep) > 0 {
		name += " " + strings.Join(keep, " ")
	}
	return name
}

// name is the program's name: argv[0]'s base, as comm is cut at 15 bytes.
func (p proc) name() string {
	if len(p.Args) == 0 || p.Args[0] == "" {
		return p.Comm
	}
	return p.Args[0][strings.LastIndexByte(p.Args[0], '/')+1:]
}

// seen remembers the processes the demo saw, by PID and start time, so that
// at the end it can tell whether any is still alive and kill exactly those.
type seen map[int]proc

func (s seen) add(ps ...proc) {
	for _, p := range ps {
		s[p.PID] = p
	}
}

// alive lists the remembered processes that still run (the same PID with
// the same start time).
func (s seen) alive() []proc {
	var out []proc
	for pid, was := range s {
		if p, err := readProc(pid); err == nil && p.Start == was.Start {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// kill SIGKILLs what alive lists.
func (s seen) kill() []proc {
	left := s.alive()
	for _, p := range left {
		syscall.Kill(p.PID, syscall.SIGKILL)
	}
	return left
}

// mentioning lists live processes whose command line names dir: whatever
// ran from the demo's directories, whether the demo saw it or not.
func mentioning(ps []proc, dir string) []proc {
	var out []proc
	for _, p := range ps {
		for _, a := range p.Args {
			if strings.Contains(a, dir) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}
