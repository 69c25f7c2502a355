package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/galera-supervisor/galera-supervisor/notify/unit"
	"github.com/galera-supervisor/galera-supervisor/supervisor"
)

// defaultUnits are the units a node on the standard option files runs as:
// the unit route, then the drop-in route (docs/operations.md).
var defaultUnits = []string{"galera-supervisor.service", "mariadb.service"}

// nodeUnit picks the unit of the node of the standard option files when
// no --unit is given. A host may have both units (the package installs
// galera-supervisor.service on a drop-in host), so the first that is
// loaded is not enough:
//  1. the unit whose main process is the datadir's mariadbd (stock) or the
//     supervisor that is its parent;
//  2. else the default unit that runs galera-supervisor and is enabled: the
//     route this host took;
//  3. else the first default unit that runs galera-supervisor, else the
//     first that is loaded.
func nodeUnit(ctx context.Context, conn *unit.Conn) (string, error) {
	datadir := "/var/lib/mysql"
	if opts, err := supervisor.LoadOptionFiles(supervisor.Defaults{}, nil)(ctx); err == nil {
		if d, ok := opts.Get("datadir"); ok && d != "" {
			datadir = d
		}
	}
	for _, p := range mariadbdIn(datadir) {
		name, err := conn.UnitOf(ctx, uint32(p.pid))
		if err != nil {
			continue
		}
		if st, err := conn.State(ctx, name); err == nil && (st.MainPID == uint32(p.pid) || st.MainPID == uint32(p.ppid)) {
			return name, nil
		}
	}
	var loaded, supervised []unit.State
	for _, n := range defaultUnits {
		st, err := conn.State(ctx, n)
		if err != nil {
			return "", err
		}
		if st.LoadState != "loaded" {
			continue
		}
		loaded = append(loaded, st)
		if runsSupervisor(st) {
			supervised = append(supervised, st)
		}
	}
	for _, st := range supervised {
		if st.UnitFileState == "enabled" {
			return st.Name, nil
		}
	}
	switch {
	case len(supervised) > 0:
		return supervised[0].Name, nil
	case len(loaded) > 0:
		return loaded[0].Name, nil
	}
	return "", errors.New("neither galera-supervisor.service nor mariadb.service has a unit file; use --unit")
}

// runsSupervisor says whether the unit's ExecStart is galera-supervisor.
func runsSupervisor(st unit.State) bool {
	for _, argv := range st.ExecStart {
		if len(argv) > 0 && filepath.Base(argv[0]) == "galera-supervisor" {
			return true
		}
	}
	return false
}

type proc struct{ pid, ppid int }

// mariadbdIn lists the mariadbd processes that run in datadir: the server
// changes its working directory to its datadir at start.
func mariadbdIn(datadir string) []proc {
	want, err := filepath.EvalSymlinks(datadir)
	if err != nil {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || (strings.TrimSpace(string(comm)) != "mariadbd" && strings.TrimSpace(string(comm)) != "mysqld") {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err != nil || filepath.Clean(cwd) != want {
			continue
		}
		out = append(out, proc{pid: pid, ppid: parentPID(e.Name())})
	}
	return out
}

// parentPID reads the fourth field of /proc/<pid>/stat, after the command
// name in parentheses (which may hold spaces).
func parentPID(pid string) int {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
