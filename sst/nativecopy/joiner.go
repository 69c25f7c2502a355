package nativecopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
)

// Joiner receives the datadir into staging, verifies it, swaps it in and
// prints the position; with a bypass it prints the donor's position and
// leaves the datadir alone.
func (Method) Joiner(ctx context.Context, s *sst.Session) (err error) {
	addr, err := transfer.ParseAddress(s.Args.Address)
	if err != nil {
		return sst.Errorf(sst.EINVAL, "%s: --address: %w", s.Method, err)
	}
	opts, err := transferOptions(s, transfer.Joiner)
	if err != nil {
		return err
	}
	l, err := transfer.Listen(ctx, addr, opts)
	if err != nil {
		return classify(err, "listen on "+addr.HostPort())
	}
	defer l.Close()
	ready := l.Addr()
	ready.Path = s.Method + "/" + l.Secret()
	if err := s.Proto.Ready(ready.String()); err != nil {
		return err
	}
	s.Report(progress.Event{Phase: progress.PhaseWaiting})
	sess, err := l.Accept(ctx)
	if err != nil {
		return classify(err, "wait for the donor on "+addr.HostPort())
	}
	l.Close()
	defer sess.Close()
	peer := sess.Peer()
	fail := func(err error) error {
		sess.Abort(err)
		return err
	}

	var h hello
	if err := sess.Expect(ctx, "hello", &h); err != nil {
		return classify(err, peer)
	}
	if h.Version != protocolVersion {
		return fail(sst.Errorf(sst.EPROTO, "%s: %s speaks protocol %d, this joiner %d", s.Method, peer, h.Version, protocolVersion))
	}
	if h.Bypass {
		st, err := sst.ParseState(h.State)
		if err != nil {
			return fail(sst.Errorf(sst.EPROTO, "%s: bypass state from %s: %w", s.Method, peer, err))
		}
		// The data stays; only leftovers of an interrupted earlier SST go.
		if err := sst.Recover(s.Datadir, s.Log); err != nil {
			return fail(err)
		}
		os.RemoveAll(filepath.Join(s.Datadir, sst.StagingDirName))
		s.Log.Info(fmt.Sprintf("%s sent bypass: IST will follow; datadir left as it is, position %s", peer, st))
		if err := sess.Send("verified", nil); err != nil {
			return classify(err, peer)
		}
		return s.Proto.Coordinates(st)
	}

	keep, err := sst.NewKeepRule(s.Datadir, s.Option("cpat", ""))
	if err != nil {
		return fail(err)
	}
	st, err := sst.NewStaging(s.Datadir, keep, s.Log)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err != nil {
			st.Abort()
		}
	}()
	s.Log.Info(fmt.Sprintf("receiving %d files, %s, from %s into %s", h.Files, mb(h.Total), peer, st.Dir))
	if err := st.CheckSpace(h.Total, peer); err != nil {
		return fail(err)
	}
	d := newDirs(s)
	var p plan
	if deltaWanted(s) {
		p.Delta, _, err = prepareDelta(st, d, s.Log)
		if err != nil {
			return fail(err)
		}
	}
	sink, err := transfer.OpenSink(st.Dir, transfer.SinkOptions{NoSync: opts.NoSync})
	if err != nil {
		return fail(sst.Errorf(sst.EIO, "%s: %w", s.Method, err))
	}
	defer sink.Close()
	if err := sess.Send("plan", p); err != nil {
		return classify(err, peer)
	}

	t0 := time.Now()
	s.Report(progress.Event{Phase: progress.PhaseReceiving, Total: h.Total, Peer: peer})
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type served struct {
		stats transfer.Stats
		err   error
	}
	done := make(chan served, 1)
	go func() {
		stats, err := sess.Serve(sctx, sink)
		if err != nil {
			cancel()
		}
		done <- served{stats, err}
	}()
	man, merr := control(sctx, sess, st, peer)
	var se *sst.Error
	if errors.As(merr, &se) {
		sess.Abort(merr) // our own verdict: tell the donor, end Serve
	}
	res := <-done
	// The transfer's own error says most; a cancelled Serve only echoes ours.
	if res.err != nil && !(merr != nil && errors.Is(res.err, context.Canceled)) {
		return classify(res.err, "receive from "+peer)
	}
	if merr != nil {
		return classify(merr, peer)
	}
	el := time.Since(t0)
	s.Log.Info(fmt.Sprintf("received %s from %s in %.1fs (%.0f MB/s; final syncfs %.2fs)", mb(res.stats.Bytes), peer, el.Seconds(), float64(res.stats.Bytes)/1e6/max(el.Seconds(), 1e-3), res.stats.SyncTime.Seconds()))

	s.Report(progress.Event{Phase: progress.PhaseVerifying, Peer: peer})
	state, err := sst.ParseState(man.State)
	if err != nil {
		return fail(sst.Errorf(sst.EPROTO, "%s: state from %s: %w", s.Method, peer, err))
	}
	stagings, err := finishStaging(s, st, d, man, peer)
	if err != nil {
		for _, x := range stagings {
			x.Abort()
		}
		return fail(err)
	}
	s.Report(progress.Event{Phase: progress.PhaseMoving, Peer: peer})
	if err := sst.Swap(stagings...); err != nil {
		for _, x := range stagings {
			x.Abort()
		}
		return fail(err)
	}
	s.Log.Info(fmt.Sprintf("new datadir from %s in place (%d files); previous contents removed", peer, len(man.Files)))
	if err := sess.Send("verified", nil); err != nil {
		s.Log.Warn(fmt.Sprintf("tell %s the data is verified: %v", peer, err))
	}
	return s.Proto.Coordinates(state)
}

// deltaWanted: [sst] delta=1 asks for delta mode; "auto" uses it when
// an old datadir is present (ibdata1 or a redo log).
func deltaWanted(s *sst.Session) bool {
	switch strings.ToLower(s.Option("delta", "0")) {
	case "1", "on", "yes", "true":
		return true
	case "auto":
		_, err := os.Stat(filepath.Join(s.Dirs().InnoDBData, "ibdata1"))
		return err == nil
	}
	return false
}

// finishStaging checks the staged tree against the donor's manifest,
// moves files of directories outside the datadir into their own staging,
// and writes the binlog index. It returns every staging to swap.
func finishStaging(s *sst.Session, st *sst.Staging, d dirs, man manifest, peer string) ([]*sst.Staging, error) {
	want := map[string]bool{}
	for _, f := range man.Files {
		if err := sst.CheckPath(f.Name); err != nil {
			return []*sst.Staging{st}, sst.Errorf(sst.EPROTO, "%s: manifest from %s: %v", s.Method, peer, err)
		}
		want[f.Name] = true
	}
	if removed, err := st.Prune(want); err != nil {
		return []*sst.Staging{st}, err
	} else if len(removed) > 0 {
		s.Log.Info(fmt.Sprintf("dropped %d staged files the donor no longer has", len(removed)))
	}
	if err := st.RecordTree(); err != nil {
		return []*sst.Staging{st}, err
	}
	entries := make([]sst.ManifestEntry, 0, len(man.Files))
	for _, f := range man.Files {
		entries = append(entries, sst.ManifestEntry{Path: f.Name, Size: f.Size})
	}
	if err := st.Verify(entries, peer); err != nil {
		return []*sst.Staging{st}, err
	}

	// Relocate "@tag/name" files to this joiner's directories.
	out := []*sst.Staging{st}
	ext := map[string]*sst.Staging{}
	var binlogs []string
	base, index := s.Binlog()
	sort.Slice(man.Files, func(i, j int) bool { return man.Files[i].Name < man.Files[j].Name })
	for _, f := range man.Files {
		tag, name, ok := strings.Cut(strings.TrimPrefix(f.Name, "@"), "/")
		if !strings.HasPrefix(f.Name, "@") || !ok {
			continue
		}
		from := filepath.Join(st.Dir, f.Name)
		dir, known := d.tags[tag]
		if !known {
			if tag == tagBinlog {
				s.Log.Warn(fmt.Sprintf("binary logging is off here: dropping binlog %s from %s", name, peer))
				os.Remove(from)
				continue
			}
			return out, sst.Errorf(sst.EPROTO, "%s: %s sent %s for an unknown directory", s.Method, peer, f.Name)
		}
		if tag == tagBinlog {
			binlogs = append(binlogs, filepath.Join(dir, name))
		}
		var to string
		if rel, err := filepath.Rel(d.data, dir); err == nil && filepath.IsLocal(rel) || dir == d.data {
			to = filepath.Join(st.Dir, rel, name)
		} else {
			x, ok := ext[dir]
			if !ok {
				// Missing directories are created, as the stock create_dirs does.
				if err := os.MkdirAll(dir, 0o750); err != nil {
					return out, sst.Errorf(sst.EIO, "%s: create %s directory %s: %w", s.Method, tag, dir, err)
				}
				var err error
				if x, err = sst.NewStaging(dir, keepOnly(tag, base), s.Log); err != nil {
					return out, err
				}
				ext[dir] = x
				out = append(out, x)
			}
			to = filepath.Join(x.Dir, name)
		}
		if err := moveFile(from, to); err != nil {
			return out, sst.Errorf(sst.EIO, "%s: place %s: %w", s.Method, f.Name, err)
		}
	}
	for _, tag := range []string{tagInnoDBData, tagInnoDBLog, tagInnoDBUndo, tagAriaLog, tagBinlog} {
		os.Remove(filepath.Join(st.Dir, "@"+tag))
	}
	if index != "" && len(binlogs) > 0 {
		if err := writeIndex(s, out, ext, d, index, binlogs); err != nil {
			return out, err
		}
	}
	return out, nil
}

// keepOnly is the keep rule of a directory outside the datadir: only the
// files of tag are replaced; anything else there (error logs, other
// servers' files) stays.
func keepOnly(tag, binlogBase string) sst.KeepRule {
	var re *regexp.Regexp
	switch tag {
	case tagInnoDBData:
		re = reInnoDBData
	case tagInnoDBLog:
		re = reRedo
	case tagInnoDBUndo:
		re = reUndo
	case tagAriaLog:
		re = reAria
	case tagBinlog:
		re = regexp.MustCompile(`^` + regexp.QuoteMeta(filepath.Base(binlogBase)) + `\.([0-9]+|index|state)$`)
	}
	return func(name string) bool { return !re.MatchString(name) }
}

// writeIndex writes the binlog index listing the received binlogs, in the
// form mariadbd writes it, into the staging of the index's directory.
func writeIndex(s *sst.Session, all []*sst.Staging, ext map[string]*sst.Staging, d dirs, index string, binlogs []string) error {
	var b strings.Builder
	for _, p := range binlogs {
		if filepath.Dir(p) == d.data {
			fmt.Fprintf(&b, "./%s\n", filepath.Base(p))
		} else {
			fmt.Fprintf(&b, "%s\n", p)
		}
	}
	dir := filepath.Dir(index)
	var target string
	if rel, err := filepath.Rel(d.data, dir); err == nil && (filepath.IsLocal(rel) || rel == ".") {
		target = filepath.Join(all[0].Dir, rel, filepath.Base(index))
	} else if x, ok := ext[dir]; ok {
		target = filepath.Join(x.Dir, filepath.Base(index))
	} else {
		s.Log.Warn(fmt.Sprintf("binlog index %s is outside the datadir and the binlog directory: not written", index))
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return sst.Errorf(sst.EIO, "%s: binlog index: %w", s.Method, err)
	}
	if err := os.WriteFile(target, []byte(b.String()), 0o640); err != nil {
		return sst.Errorf(sst.EIO, "%s: binlog index: %w", s.Method, err)
	}
	return nil
}

// moveFile renames, or copies across filesystems.
func moveFile(from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o750); err != nil {
		return err
	}
	err := os.Rename(from, to)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Remove(from)
}

// control answers the donor's requests until its manifest arrives:
// "hashreq" asks for the block hashes of staged files (complete, since the
// donor synced first), so that a file that changed on the donor is patched
// rather than sent again.
func control(ctx context.Context, sess *transfer.Session, st *sst.Staging, peer string) (manifest, error) {
	for {
		msg, err := sess.Recv(ctx)
		if err != nil {
			return manifest{}, err
		}
		switch msg.Kind {
		case "manifest":
			var man manifest
			if err := msg.Decode(&man); err != nil {
				return manifest{}, sst.Errorf(sst.EPROTO, "native-copy: manifest from %s: %w", peer, err)
			}
			return man, nil
		case "hashreq":
			var req hashReq
			if err := msg.Decode(&req); err != nil {
				return manifest{}, sst.Errorf(sst.EPROTO, "native-copy: hash request from %s: %w", peer, err)
			}
			var resp hashResp
			for _, name := range req.Names {
				p, err := st.Path(name)
				if err != nil {
					return manifest{}, err
				}
				df, err := hashFile(p, name, req.Only[name])
				if err != nil {
					continue // not staged: the donor sends it whole
				}
				resp.Files = append(resp.Files, df)
			}
			if err := sess.Send("hashes", resp); err != nil {
				return manifest{}, err
			}
		default:
			return manifest{}, sst.Errorf(sst.EPROTO, "native-copy: unexpected %q message from %s", msg.Kind, peer)
		}
	}
}
