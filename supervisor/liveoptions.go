package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/galera-supervisor/galera-supervisor/optionfile"
	"github.com/galera-supervisor/galera-supervisor/sst"
)

// The option files are live: an edit of [sst] applies to the next SST
// without a restart of mariadbd, through a snapshot in the runtime
// directory that mariadbd's environment names (sst.EnvOptions). The
// snapshot holds the last good [sst] group and the server groups mariadbd
// started with, which a restart alone changes. An invalid edit leaves the
// snapshot as it was.

// writeSnapshot writes the options the next SST reads to path, atomically
// and readable by mariadbd's user only: [sst] from last, the server groups
// from started.
func writeSnapshot(path string, started, last *optionfile.Set, cred *syscall.Credential) error {
	set := started.WithGroups(last, sst.SSTGroups...)
	b, err := set.MarshalSnapshot(sst.SnapshotGroups()...)
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

// newProblems is why an edit of the option files is refused, each naming
// file:line: an error in an included file (MariaDB reads past it, ignoring
// the rest of that file) or an [sst] value the SST would reject, that the
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
	for _, f := range optionfile.CheckSST(set) {
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
			log.Info("option files: "+d+": needs a restart of mariadbd", slog.String("applies", "restart"))
		}
		return
	}
	for _, c := range optionfile.Diff(old.Files, new.Files, sst.SSTGroups...) {
		log.Info("option files: "+c.String()+": the next SST uses it", changeAttrs(c, "next-sst")...)
	}
	for _, c := range optionfile.Diff(old.Files, new.Files, optionfile.ServerGroups("")...) {
		log.Info("option files: "+c.String()+": needs a restart of mariadbd", changeAttrs(c, "restart")...)
	}
}

func changeAttrs(c optionfile.Change, applies string) []any {
	o := c.New
	if !c.Has {
		o = c.Old
	}
	return []any{slog.String("option", c.Key), slog.String("option_group", o.Group),
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
			s.log.Error(fmt.Sprintf("%v; the option files are read again only on SIGHUP", err))
		}
	}()
	// Edits made from here on are seen.
	select {
	case <-w.Ready():
	case <-done:
	}
	return w.Changed(), func() { cancel(); <-done }, nil
}
