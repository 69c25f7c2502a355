package optionfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher tells when the option files of Sources change: any file or
// !includedir directory of the include tree, each symlink hop on the way to
// them (/etc/mysql/my.cnf → /etc/alternatives/my.cnf → ...), the default
// files that do not exist yet, and new .cnf files in an !includedir.
//
// It watches directories, not files: editors replace a file by renaming a
// new one over it, and a watch on the old file would see nothing more. After
// each change it reads the files again, to learn the include tree anew.
type Watcher struct {
	// Debounce is the quiet time after the last event before Changed
	// fires: an editor's save is several events. Default 100ms; a stream
	// of events fires at least every 5 Debounce.
	Debounce time.Duration

	src    Sources
	log    *slog.Logger
	load   func(Sources) (*Set, error)
	ready  chan struct{}
	change chan struct{}

	fw      *fsnotify.Watcher
	watched map[string]bool // directories given to fw
	names   map[string]bool // paths whose events count: files, hops, missing files
	incDirs map[string]bool // !includedir directories: a .cnf in them counts
	failed  map[string]bool // directories that could not be watched, logged
}

// NewWatcher returns a Watcher of what src names; Run starts it. A nil
// logger discards.
func NewWatcher(src Sources, logger *slog.Logger) *Watcher {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Watcher{src: src, log: logger, load: Load,
		ready: make(chan struct{}), change: make(chan struct{}, 1)}
}

// Ready is closed once the first watches are in place: an edit made after
// it is seen.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Changed receives after the option files changed (or may have: an event
// queue overflow). Changes that come before the last one is received
// coalesce into one. The receiver reads the files itself.
func (w *Watcher) Changed() <-chan struct{} { return w.change }

// Run watches until ctx is done. It fails only when inotify cannot be set
// up at all; a path it cannot watch is logged and retried at each change.
func (w *Watcher) Run(ctx context.Context) error {
	debounce := w.Debounce
	if debounce <= 0 {
		debounce = 100 * time.Millisecond
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch option files: %w", err)
	}
	defer fw.Close()
	w.fw, w.watched = fw, map[string]bool{}
	w.rescan(false)
	close(w.ready)

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var first time.Time // of the pending events; zero: none
	pend := func(now time.Time) {
		if first.IsZero() {
			first = now
		}
		timer.Reset(max(0, min(debounce, first.Add(5*debounce).Sub(now))))
	}
	overflow := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if w.counts(ev.Name) {
				w.log.Debug("option files: event", slog.String("path", ev.Name), slog.String("op", ev.Op.String()))
				pend(time.Now())
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.log.Warn("option files: inotify queue overflowed; reading everything again")
				overflow = true
				pend(time.Now())
				continue
			}
			w.log.Warn("option files: watch", slog.Any("error", err))
		case <-timer.C:
			first = time.Time{}
			w.rescan(overflow)
			overflow = false
			select {
			case w.change <- struct{}{}:
			default:
			}
		}
	}
}

// counts says whether an event on path may change what Load reads.
func (w *Watcher) counts(path string) bool {
	return w.names[path] || w.incDirs[path] ||
		(w.incDirs[filepath.Dir(path)] && ext(path) == ".cnf")
}

// rescan reads the option files again and watches what they name now. With
// all, every watch is dropped and added again: after an overflow nothing
// about the old ones can be trusted.
func (w *Watcher) rescan(all bool) {
	set, _ := w.load(w.src) // errors are the receiver's to report
	names, incDirs, dirs, failed := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, l := range set.looked {
		if strings.HasPrefix(l.path, "~") {
			continue // no $HOME: MariaDB reads nothing there either
		}
		for _, hop := range hops(l.path) {
			watchPath(hop, names, dirs)
		}
		if l.dir {
			if real, err := filepath.EvalSymlinks(l.path); err == nil {
				incDirs[real] = true
				dirs[real] = true
			}
		}
	}
	if all {
		for d := range w.watched {
			w.fw.Remove(d)
			delete(w.watched, d)
		}
	}
	for d := range w.watched {
		if !dirs[d] {
			w.fw.Remove(d)
			delete(w.watched, d)
		}
	}
	for d := range dirs {
		if w.watched[d] {
			continue
		}
		if err := w.fw.Add(d); err != nil {
			if !w.failed[d] { // once, not at every change
				w.log.Warn("option files: cannot watch a directory", slog.String("path", d), slog.Any("error", err))
			}
			failed[d] = true
			continue
		}
		w.watched[d] = true
	}
	w.names, w.incDirs, w.failed = names, incDirs, failed
}

// watchPath makes events on path count, under the name inotify will give
// them: its directory with symlinks resolved. When the directory does not
// exist, its nearest existing ancestor is watched so that its creation is
// seen.
func watchPath(path string, names, dirs map[string]bool) {
	path = absPath(path)
	for range 64 {
		dir := filepath.Dir(path)
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			names[filepath.Join(real, filepath.Base(path))] = true
			dirs[real] = true
			return
		}
		if dir == path {
			return
		}
		path = dir
	}
}

// hops is path and each symlink it leads through, in order.
func hops(path string) []string {
	path = absPath(path)
	out := []string{path}
	for range 40 { // Linux's MAXSYMLINKS
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			break
		}
		t, err := os.Readlink(path)
		if err != nil {
			break
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(path), t)
		}
		path = filepath.Clean(t)
		out = append(out, path)
	}
	return out
}
