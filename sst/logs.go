package sst

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"github.com/galera-supervisor/galera-supervisor/schema"
)

// An SST process logs to <datadir>/<method>.<role>.log (native-copy.joiner.log,
// native-backup.donor.log), following the stock mariabackup.<step>.log
// names. Before a new SST, on either role, the previous logs are gzipped
// into the archive directory as <name>.<YYYY.MM.DD-HH.MM.SS.N>.gz, as the
// stock script does (MDEV-17973), and the archive is pruned to
// sst-log-archive-keep copies of each log, none older than
// sst-log-archive-max-age.

// archiveStamp is date +%Y.%m.%d-%H.%M.%S.%N, the stock script's.
const archiveStamp = "2006.01.02-15.04.05.000000000"

// DefaultLogArchiveDir is where logs are archived by default, and when
// sst-log-archive-dir is inside the datadir.
var DefaultLogArchiveDir = schema.Find(schema.SST, "sst-log-archive-dir").Default

// LogName is the log file, under the datadir, of an SST by method in role.
func LogName(method string, role Role) string { return method + "." + string(role) + ".log" }

// IsSessionLog reports whether a datadir's top-level name is an SST's own
// log (LogName), or a copy archived beside it when the archive directory
// was unusable: a joiner keeps them through the swap and a donor never
// sends them, whatever cpat says.
func IsSessionLog(name string) bool {
	for _, r := range []Role{Joiner, Donor} {
		suffix := "." + string(r) + ".log"
		if strings.HasSuffix(name, suffix) {
			return true
		}
		if i := strings.LastIndex(name, suffix+"."); i > 0 {
			if _, ok := archivedAt(name, name[:i+len(suffix)]); ok {
				return true
			}
		}
	}
	return false
}

// StockLogName is the name the 10.11 mariabackup script gives the log
// mariadb-backup writes as name: mariabackup.backup.log for
// mariadb-backup.backup.log.
func StockLogName(name string) (string, bool) {
	if rest, ok := strings.CutPrefix(name, "mariadb-backup."); ok {
		return "mariabackup." + rest, true
	}
	return "", false
}

// LogNamer is a Method that writes logs of its own under the datadir
// (native-backup: mariadb-backup's), to be archived with the session's.
type LogNamer interface {
	LogNames() []string
}

// Archive is how the previous logs are kept: the [sst] sst-log-archive*
// options.
type Archive struct {
	Off    bool          // sst-log-archive=0
	Dir    string        // sst-log-archive-dir
	Keep   int           // sst-log-archive-keep: copies of each log; 0 = no limit
	MaxAge time.Duration // sst-log-archive-max-age; 0 = no limit
}

// ArchiveFrom reads the archive options through lookup ([sst] option →
// value, empty when unset), with the schema's defaults. A bad value is an
// error naming the option.
func ArchiveFrom(lookup func(name string) string) (Archive, error) {
	v := schema.Values{Group: schema.SST, Look: func(name string) (string, bool) {
		val := lookup(name)
		return val, val != ""
	}}
	var a Archive
	on, _, err1 := v.Bool("sst-log-archive")
	a.Off = !on
	a.Dir, _, _ = v.String("sst-log-archive-dir")
	if a.Dir = strings.TrimRight(a.Dir, "/"); a.Dir == "" {
		a.Dir = "/"
	}
	keep, _, err2 := v.Int("sst-log-archive-keep")
	a.Keep = int(keep)
	maxAge, _, err3 := v.Duration("sst-log-archive-max-age")
	a.MaxAge = maxAge
	return a, errors.Join(err1, err2, err3)
}

// Run archives the logs names under datadir, then prunes the archive.
// Failures are logged, never fatal: a log is not worth an SST.
func (a Archive) Run(datadir string, names []string, now time.Time, log *slog.Logger) {
	if a.Off {
		return
	}
	dir := a.Dir
	if inside(datadir, dir) {
		// A donor would send it, and a joiner's swap would replace it.
		log.Warn("[sst] sst-log-archive-dir is inside the datadir: archiving into "+DefaultLogArchiveDir+" instead",
			slog.String("sst_option", "sst-log-archive-dir"), slog.String("path", dir), slog.String("datadir", datadir))
		dir = DefaultLogArchiveDir
	}
	// As stock does, the directory exists after the first SST, with or
	// without anything to archive yet.
	if err := os.MkdirAll(dir, 0o750); err != nil {
		log.Warn("cannot create sst-log-archive-dir", slog.String("path", dir), slog.Any("error", err))
	}
	stamp := now.Format(archiveStamp)
	for _, name := range names {
		src := filepath.Join(datadir, name)
		if _, err := os.Lstat(src); err != nil {
			continue
		}
		dst := filepath.Join(dir, name+"."+stamp+".gz")
		err := gzipTo(src, dst)
		if err == nil {
			err = os.Remove(src)
		}
		if err != nil {
			local := src + "." + stamp
			if rerr := os.Rename(src, local); rerr != nil {
				log.Warn("cannot archive the previous log", slog.String("path", src), slog.Any("error", errors.Join(err, rerr)))
				continue
			}
			log.Warn("cannot archive the previous log into sst-log-archive-dir; kept it beside itself", slog.String("path", src),
				slog.String("archive_dir", dir), slog.String("kept_as", local), slog.Any("error", err))
			continue
		}
		log.Info("archived the previous log", slog.String("log", name), slog.String("path", dst))
		if stock, ok := StockLogName(name); ok {
			// Where tools look for the stock script's logs, a link.
			sdst := filepath.Join(dir, stock+"."+stamp+".gz")
			if err := os.Link(dst, sdst); err != nil {
				log.Warn("cannot archive the log under the stock name", slog.String("path", sdst), slog.Any("error", err))
			}
		}
	}
	pruned := names
	for _, n := range names {
		if stock, ok := StockLogName(n); ok && !slices.Contains(pruned, stock) {
			pruned = append(slices.Clip(pruned), stock)
		}
	}
	removed, err := Prune(dir, pruned, a.Keep, a.MaxAge, now)
	if err != nil {
		log.Warn("cannot prune the log archive", slog.String("path", dir), slog.Any("error", err))
	}
	// Copies kept beside themselves obey the same retention.
	local, err := Prune(datadir, names, a.Keep, a.MaxAge, now)
	if err != nil {
		log.Warn("cannot prune the log archive", slog.String("path", datadir), slog.Any("error", err))
	}
	removed = append(removed, local...)
	if len(removed) > 0 {
		log.Info("pruned archived logs", slog.Int("pruned", len(removed)), slog.String("path", dir),
			slog.Int("keep", a.Keep), slog.Duration("max_age", a.MaxAge))
	}
}

// Prune removes from dir the archived copies of names (<name>.<stamp>.gz)
// beyond the keep newest of each and those older than maxAge, by the time
// in their name; 0 disables either limit. Other files are left alone.
func Prune(dir string, names []string, keep int, maxAge time.Duration, now time.Time) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type copy struct {
		file string
		at   time.Time
	}
	byName := map[string][]copy{}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		for _, n := range names {
			if at, ok := archivedAt(e.Name(), n); ok {
				byName[n] = append(byName[n], copy{e.Name(), at})
			}
		}
	}
	var removed []string
	var errs []error
	for _, cs := range byName {
		sort.Slice(cs, func(i, j int) bool { return cs[i].at.After(cs[j].at) })
		for i, c := range cs {
			if (keep > 0 && i >= keep) || (maxAge > 0 && now.Sub(c.at) > maxAge) {
				p := filepath.Join(dir, c.file)
				if err := os.Remove(p); err != nil {
					errs = append(errs, err)
					continue
				}
				removed = append(removed, p)
			}
		}
	}
	sort.Strings(removed)
	return removed, errors.Join(errs...)
}

// archivedAt parses "<name>.<stamp>.gz" (or without .gz, a copy gzip did
// not finish), the stamp in local time as date(1) wrote it.
func archivedAt(file, name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(file, name+".")
	if !ok {
		return time.Time{}, false
	}
	rest = strings.TrimSuffix(rest, ".gz")
	if len(rest) != len(archiveStamp) {
		return time.Time{}, false
	}
	at, err := time.ParseInLocation(archiveStamp, rest, time.Local)
	return at, err == nil
}

// inside reports whether dir is root or below it.
func inside(root, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(root), filepath.Clean(dir))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func gzipTo(src, dst string) (err error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		return fmt.Errorf("gzip %s: %w", src, err)
	}
	return zw.Close()
}

// openLog creates (truncating) a log file under dir, readable by the DBA.
func openLog(dir, name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return f, nil
}

// syslogTag is the tag of an SST's syslog lines, or "" when it logs to
// its files and stderr. [sst] sst-syslog=1 sends to syslog, -1 never; 0 (the
// default) follows [mysqld_safe] syslog, as the stock scripts do. The tag
// is stock's: [mysqld_safe] syslog-tag (or $SST_SYSLOG_TAG), a dash, then
// wsrep-sst-<role>; without a syslog-tag, wsrep-sst-<role>.
func (s *Session) syslogTag(getenv func(string) string) (string, error) {
	prefix, on, err := s.syslogPrefix(getenv)
	if !on || err != nil {
		return "", err
	}
	return prefix + "wsrep-sst-" + string(s.Args.Role), nil
}

// syslogPrefix says whether the SST logs to syslog, and the prefix of its
// tags: "<syslog-tag>-", or "" without one.
func (s *Session) syslogPrefix(getenv func(string) string) (prefix string, on bool, err error) {
	n, _, err := s.Values().Int("sst-syslog")
	if err != nil {
		return "", false, WithErrno(EINVAL, fmt.Errorf("sst: %w", err))
	}
	on = n == 1
	if n == 0 && s.Options != nil {
		if v, ok := s.Options.Lookup([]string{"mysqld_safe"}, "syslog"); ok {
			on, err = schema.ParseBool(cmpOr(v, "1"))
			if err != nil {
				return "", false, Errorf(EINVAL, "sst: [mysqld_safe] syslog=%s: %v", v, err)
			}
		}
	}
	if !on {
		return "", false, nil
	}
	if prefix = s.OptionIn([]string{"mysqld_safe"}, "syslog-tag", getenv("SST_SYSLOG_TAG")); prefix != "" {
		prefix += "-"
	}
	return prefix, true, nil
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// openLogs points the session's logger at its destinations for the rest
// of the run: syslog, or stderr (the journal) plus <datadir>/LogName. It
// returns what to close at the end.
func (s *Session) openLogs(cfg Config, base slog.Handler) io.Closer {
	prefix, on, err := s.syslogPrefix(cfg.Getenv)
	if err != nil {
		s.Log.Warn("bad syslog option; not logging to syslog", slog.Any("error", err))
	}
	tag := ""
	if on {
		tag = prefix + "wsrep-sst-" + string(s.Args.Role)
	}
	with := func(h slog.Handler) *slog.Logger {
		return slog.New(h).With(slog.String("sst_method", s.Method), slog.String("sst_role", string(s.Args.Role)))
	}
	if tag != "" {
		h, err := logging.NewSyslog(s.Option("sst-syslog-socket", ""), tag, nil)
		if err != nil {
			s.Log.Warn("cannot log to syslog; logging to stderr", slog.Any("error", err))
			return nopCloser{}
		}
		s.Log.Info("logging to syslog", slog.String("syslog_tag", tag))
		s.Log = with(h)
		s.syslog = &prefix
		return h
	}
	f, err := openLog(s.Datadir, LogName(s.Method, s.Args.Role))
	if err != nil {
		s.Log.Warn("cannot open the SST log; logging to stderr only", slog.Any("error", err))
		return nopCloser{}
	}
	s.Log = with(logging.Tee(base, logging.NewText(f, logging.TextOptions{Style: logging.SST, Now: cfg.Now})))
	return f
}

// ToolLog is where a tool the method runs (mariadb-backup) writes its
// output: a file under the datadir, or, when the SST logs to syslog, lines
// to syslog at daemon.err tagged <syslog-tag>-<tag>, as stock's
// "2>&1 | logger -p daemon.err -t ${ssystag}innobackupex-apply" does.
type ToolLog struct {
	io.Writer
	// Path is the file; "" with syslog.
	Path   string
	closer io.Closer
	lw     *lineWriter
}

// OpenToolLog opens the log of a tool: <datadir>/name, or syslog with
// tag (innobackupex-backup, -apply, -move in stock).
func (s *Session) OpenToolLog(name, tag string) (*ToolLog, error) {
	if s.syslog == nil {
		f, err := openLog(s.Datadir, name)
		if err != nil {
			return nil, err
		}
		return &ToolLog{Writer: f, Path: f.Name(), closer: f}, nil
	}
	h, err := logging.NewSyslog(s.Option("sst-syslog-socket", ""), *s.syslog+tag, nil)
	if err != nil {
		return nil, err
	}
	log := slog.New(h)
	lw := &lineWriter{line: func(l string) { log.Error(l) }}
	return &ToolLog{Writer: lw, closer: h, lw: lw}, nil
}

// Lines returns what the tool wrote: the file, or the last lines sent to
// syslog.
func (l *ToolLog) Lines() []string {
	if l.lw != nil {
		l.lw.mu.Lock()
		defer l.lw.mu.Unlock()
		return append([]string(nil), l.lw.last...)
	}
	b, _ := os.ReadFile(l.Path)
	return strings.Split(string(b), "\n")
}

// Where names the log for a message: the file, or syslog's tag.
func (l *ToolLog) Where() string {
	if l.lw != nil {
		return "syslog"
	}
	return l.Path
}

// Close flushes a last partial line and closes the log.
func (l *ToolLog) Close() error {
	if l.lw != nil {
		l.lw.flush()
	}
	return l.closer.Close()
}

// lineWriter calls line for each line written, and keeps the last ones.
type lineWriter struct {
	mu      sync.Mutex
	line    func(string)
	partial []byte
	last    []string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.emit(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.emit(string(w.partial))
		w.partial = nil
	}
}

func (w *lineWriter) emit(l string) {
	if l = strings.TrimRight(l, "\r"); l == "" {
		return
	}
	w.line(l)
	if w.last = append(w.last, l); len(w.last) > 1000 {
		w.last = w.last[len(w.last)-1000:]
	}
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
