package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/galera-supervisor/galera-supervisor/optionfile"
	"github.com/galera-supervisor/galera-supervisor/schema"
	"github.com/galera-supervisor/galera-supervisor/sst"
)

// The option files are live: an edit of [sst] applies to the next SST
// without a restart of mariadbd, through a snapshot in the runtime
// directory that mariadbd's environment names (schema.EnvOptions). The
// snapshot holds the last good [sst] group and the server groups mariadbd
// started with, which a restart alone changes. An invalid edit leaves the
// snapshot as it was.

// writeSnapshot writes the options the next SST reads to path, atomically
// and readable by mariadbd's user only: [sst] from last, the server groups
// from started.
func writeSnapshot(path string, started, last *optionfile.Set, cred *syscall.Credential) error {
	set := started.WithGroups(last, sst.SSTGroups...)
	b, err := set.MarshalSnapshot(schema.SnapshotGroups()...)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".options-*.json")
	if err != nil {
		return fmt.Errorf("write option snapshot: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, a no-op
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && cred != nil {
		err = os.Chown(tmp, int(cred.Uid), int(cred.Gid))
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write option snapshot %s: %w", path, err)
	}
	return nil
}

// readEdit is the live guard: it reads the option files again and says
// why the edit is refused (nil: it applies): they do not read, a value is
// one "config check" calls an error (loadOptions), or newProblems.
func (s *Supervisor) readEdit(ctx context.Context, old *optionfile.Set) (Options, []string) {
	o, err := s.loadOptions(ctx)
	if err != nil {
		return o, []string{err.Error()}
	}
	if o.Files == nil {
		return o, nil
	}
	return o, newProblems(old, o.Files)
}

// newProblems is why an edit of the option files is refused, each naming
// file:line: an error in an included file (MariaDB reads past it, ignoring
// the rest of that file) or an [sst] or [galera-supervisor] value that
// "config check" calls an error and the SST would refuse, that the
// configuration in force does not have already.
func newProblems(old, new *optionfile.Set) []string {
	had := map[string]bool{}
	if old != nil {
		for _, p := range problems(old) {
			had[p] = true
		}
	}
	var out []string
	for _, p := range problems(new) {
		if !had[p] {
			out = append(out, p)
		}
	}
	return out
}

func problems(set *optionfile.Set) []string {
	var out []string
	for _, err := range set.Broken() {
		out = append(out, err.Error())
	}
	for _, f := range schema.CheckSet(set, SSTMethod(set)) {
		if f.Error {
			out = append(out, f.String())
		}
	}
	return out
}

// logChanges logs, one record each, how the option files changed between
// old and new, and whether it applies now.
func (r *runner) logChanges(old, new Options) {
	log := r.s.log
	if old.Files == nil || new.Files == nil {
		for _, d := range diffOptions(old.Server, new.Server) {
			log.Info("option files: changed, needs a restart of mariadbd", slog.String("change", d), slog.String("applies", "restart"))
		}
		return
	}
	for _, c := range optionfile.Diff(old.Files, new.Files, sst.SSTGroups...) {
		log.Info("option files: changed, the next SST uses it", changeAttrs(c, "next-sst")...)
	}
	for _, c := range optionfile.Diff(old.Files, new.Files, optionfile.ServerGroups("")...) {
		log.Info("option files: changed, needs a restart of mariadbd", changeAttrs(c, "restart")...)
	}
}

func changeAttrs(c optionfile.Change, applies string) []any {
	o := c.New
	if !c.Has {
		o = c.Old
	}
	was, now := c.Values()
	return []any{slog.String("option", c.Key), slog.String("old", was), slog.String("new", now), slog.String("option_group", o.Group),
		slog.String("option_file", o.File), slog.Int("option_line", o.Line), slog.String("applies", applies)}
}

// watch starts the option-file watcher when Config.Watch asks for it: it
// returns the channel of changes (nil without a watcher) and a function
// that stops the watcher and waits for it.
func (s *Supervisor) watch(ctx context.Context) (<-chan struct{}, func(), error) {
	if !s.cfg.Watch {
		return nil, func() {}, nil
	}
	src, err := s.cfg.Defaults.Sources()
	if err != nil {
		return nil, nil, err
	}
	w := optionfile.NewWatcher(src, s.log)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(wctx); err != nil {
			s.log.Error("watching the option files failed; they are read again only on SIGHUP", slog.Any("error", err))
		}
	}()
	// Edits made from here on are seen.
	select {
	case <-w.Ready():
	case <-done:
	}
	return w.Changed(), func() { cancel(); <-done }, nil
}

// reloadOptions reads the option files again. An edit that does not read,
// or that newProblems refuses, leaves the configuration as it was; else
// [sst] applies to the next SST and a server group needs a restart. With
// forward (SIGHUP), mariadbd gets a SIGHUP too.
func (r *runner) reloadOptions(ctx context.Context, cmd *exec.Cmd, forward bool) {
	s := r.s
	o, bad := s.readEdit(ctx, r.opts.Files)
	switch {
	case len(bad) > 0:
		s.metrics.Reload("refused")
		for _, p := range bad {
			s.log.Warn("option files: edit refused; keeping the last good configuration", slog.String("refused", p))
		}
	default:
		s.metrics.Reload("applied")
		// The snapshot first: once logged, the next SST has it.
		if r.snapshot != "" && o.Files != nil {
			if err := writeSnapshot(r.snapshot, r.started, o.Files, r.cred); err != nil {
				s.log.Error("cannot write the options snapshot; the next SST reads the options of before", slog.Any("error", err), slog.String("option_snapshot", r.snapshot))
			}
		}
		r.logChanges(r.opts, o)
		if !mapsEqual(r.opts.Client, o.Client) || r.opts.Server["socket"] != o.Server["socket"] {
			s.log.Info("reload: health check credentials or socket changed; using the new ones")
			h := s.cfg.NewHealth(o)
			r.healthMu.Lock()
			old := r.health
			r.health = h
			r.healthMu.Unlock()
			old.Close()
		}
		r.opts = o
	}
	if !forward {
		return
	}
	// mariadbd's SIGHUP flushes logs, privileges and caches, what
	// ExecReload=kill -HUP $MAINPID did in the stock unit (logrotate relies
	// on it). Before mariadbd installs its handler SIGHUP would kill it, so
	// it is forwarded only once the server answers queries.
	if r.view.sqlUp && !r.view.stopping {
		if err := cmd.Process.Signal(syscall.SIGHUP); err == nil {
			s.log.Info("reload: forwarded SIGHUP to mariadbd", slog.Int("pid", cmd.Process.Pid))
		}
	} else {
		s.log.Info("reload: SIGHUP not forwarded: mariadbd does not answer queries yet")
	}
}

func diffOptions(a, b map[string]string) []string {
	var out []string
	for k, v := range b {
		if old, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("%s added: %q", k, v))
		} else if old != v {
			out = append(out, fmt.Sprintf("%s changed: %q -> %q", k, old, v))
		}
	}
	for k, v := range a {
		if _, ok := b[k]; !ok {
			out = append(out, fmt.Sprintf("%s removed (was %q)", k, v))
		}
	}
	slices.Sort(out)
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// SSTMethod is the server's wsrep_sst_method in set ("rsync", mariadbd's
// default, when unset).
func SSTMethod(set *optionfile.Set) string {
	if o, ok := set.Lookup(optionfile.ServerGroups(""), "wsrep-sst-method"); ok && o.Value != "" {
		return o.Value
	}
	return schema.Rsync
}
