package systemdtest

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const containerPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// hostHasSystemd reports whether the host's PID 1 is systemd; then nspawn
// asks it for a scope and needs none of the cgroup handling below.
func hostHasSystemd() bool {
	_, err := os.Stat("/run/systemd/system")
	return err == nil
}

// nspawnCommon are the flags every nspawn call needs on this host. Without a
// host systemd and machined there is no host bus: --register=no and
// --keep-unit keep nspawn from asking for one.
func nspawnCommon() []string {
	a := []string{"systemd-nspawn", "--quiet", "--register=no", "--link-journal=no", "--timezone=off"}
	if !hostHasSystemd() {
		a = append(a, "--keep-unit")
	}
	return a
}

// cgroup is one directory per hierarchy for one container. Without a host
// systemd nobody hands nspawn a cgroup, so it would create payload/ below the
// cgroup it was started in, and two containers would share it.
type cgroup struct {
	dirs []string
}

func cgroupRoots() []string {
	if hostHasSystemd() {
		return nil
	}
	var st syscall.Statfs_t
	const cgroup2Magic, cgroupMagic = 0x63677270, 0x27e0eb
	if syscall.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == cgroup2Magic {
		return []string{"/sys/fs/cgroup"}
	}
	var roots []string
	if syscall.Statfs("/sys/fs/cgroup/unified", &st) == nil && st.Type == cgroup2Magic {
		roots = append(roots, "/sys/fs/cgroup/unified")
	}
	if syscall.Statfs("/sys/fs/cgroup/systemd", &st) == nil && st.Type == cgroupMagic {
		roots = append(roots, "/sys/fs/cgroup/systemd")
	}
	return roots
}

func newCgroup(name string) (*cgroup, error) {
	cg := &cgroup{}
	for _, r := range cgroupRoots() {
		d := filepath.Join(r, name)
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			cg.remove()
			return nil, fmt.Errorf("create cgroup %s: %w", d, err)
		}
		cg.dirs = append(cg.dirs, d)
	}
	return cg, nil
}

// command returns a Cmd whose process moves itself into the cgroup before it
// execs args, so that nothing it starts lands anywhere else.
func (cg *cgroup) command(ctx context.Context, args ...string) *exec.Cmd {
	var procs []string
	for _, d := range cg.dirs {
		procs = append(procs, filepath.Join(d, "cgroup.procs"))
	}
	script := `for p in $GS_CGROUP_PROCS; do echo $$ >"$p" || exit 125; done; unset GS_CGROUP_PROCS; exec "$@"`
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.Env = append(os.Environ(), "GS_CGROUP_PROCS="+strings.Join(procs, " "))
	return cmd
}

// pids lists every process in the cgroup and below.
func (cg *cgroup) pids() []int {
	seen := map[int]bool{}
	for _, d := range cg.dirs {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(f); err == nil {
					seen[n] = true
				}
			}
			return nil
		})
	}
	var out []int
	for p := range seen {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

// remove kills whatever is left in the cgroup (only processes the container
// started live there) and removes the directories.
func (cg *cgroup) remove() error {
	if cg == nil {
		return nil
	}
	for _, d := range cg.dirs {
		os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0)
	}
	for _, p := range cg.pids() {
		syscall.Kill(p, syscall.SIGKILL)
	}
	var last error
	for _, d := range cg.dirs {
		for i := 0; i < 30; i++ {
			last = rmdirTree(d)
			if last == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if last != nil {
		return fmt.Errorf("remove cgroup: %w", last)
	}
	return nil
}

// rmdirTree removes a cgroup directory and its children, deepest first;
// cgroupfs only allows rmdir, never unlink of the control files.
func rmdirTree(root string) error {
	var dirs []string
	filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var last error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syscall.Rmdir(dirs[i]); err != nil && err != syscall.ENOENT {
			last = fmt.Errorf("rmdir %s: %w", dirs[i], err)
		}
	}
	return last
}

// sweepCgroups removes the empty cgroups of machines whose test binary died
// without its cleanup. Young ones may belong to a machine being started.
func sweepCgroups() {
	for _, r := range cgroupRoots() {
		dirs, _ := filepath.Glob(filepath.Join(r, "gs-nspawn-*"))
		for _, d := range dirs {
			fi, err := os.Stat(d)
			if err != nil || time.Since(fi.ModTime()) < time.Minute {
				continue
			}
			cg := &cgroup{dirs: []string{d}}
			if len(cg.pids()) == 0 {
				rmdirTree(d)
			}
		}
	}
}
