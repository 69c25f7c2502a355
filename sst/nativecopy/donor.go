package nativecopy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
)

// Donor sends the datadir (or, with --bypass, only the state).
func (Method) Donor(ctx context.Context, s *sst.Session) error {
	addr, err := transfer.ParseAddress(s.Args.Address)
	if err != nil {
		return sst.Errorf(sst.EINVAL, "%s: --address: %w", s.Method, err)
	}
	secret, err := secretFrom(addr)
	if err != nil {
		return err
	}
	opts, err := transferOptions(s, transfer.Donor)
	if err != nil {
		return err
	}
	peer := "joiner " + addr.HostPort()
	sess, err := transfer.Dial(ctx, addr, secret, opts)
	if err != nil {
		return classify(err, "connect to "+peer)
	}
	defer sess.Close()
	peer = sess.Peer()
	fail := func(err error) error {
		sess.Abort(err)
		return err
	}

	if s.Args.Bypass {
		st, err := gtidState(s)
		if err != nil {
			return fail(err)
		}
		s.Log.Info(fmt.Sprintf("IST possible: sending only the state %s to %s (bypass)", st, peer))
		if err := sess.Send("hello", hello{Version: protocolVersion, Bypass: true, State: st.String()}); err != nil {
			return classify(err, "send to "+peer)
		}
		if err := sess.Expect(ctx, "verified", nil); err != nil {
			return classify(err, peer)
		}
		return s.Proto.Done(st)
	}

	d := newDirs(s)
	n, err := maxBinlogs(s)
	if err != nil {
		return fail(err)
	}
	_, index := s.Binlog()
	binlogs, err := lastBinlogs(s.Datadir, index, n)
	if err != nil {
		return fail(err)
	}
	files, err := listFiles(d, binlogs, s.Log)
	if err != nil {
		return fail(err)
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	s.Log.Info(fmt.Sprintf("sending %d files, %s, to %s over %d streams", len(files), mb(total), peer, cmp.Or(opts.Streams, transfer.DefaultStreams)))
	payload := total
	sess.SetTotal(total)
	if err := sess.Send("hello", hello{Version: protocolVersion, Total: total, Files: len(files)}); err != nil {
		return classify(err, "send to "+peer)
	}
	var p plan
	if err := sess.Expect(ctx, "plan", &p); err != nil {
		return classify(err, peer)
	}
	delta := map[string]deltaFile{}
	for _, df := range p.Delta {
		delta[df.Name] = df
	}
	if len(delta) > 0 {
		s.Log.Info(fmt.Sprintf("delta mode: %s holds %d of the files already", peer, len(delta)))
	}

	sent := map[string]int64{} // name → size announced
	// Before the lock a file may vanish (DROP, RENAME, TRUNCATE); under it
	// DDL waits, so the locked pass's listing is the snapshot.
	underLock := false
	// openFor opens f for sending and notes what it looked like then; nil
	// without error when it vanished before the lock.
	openFor := func(f *file) (*os.File, error) {
		fh, err := os.Open(f.Path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && !underLock {
				return nil, nil // dropped or renamed meanwhile; the locked pass lists anew
			}
			return nil, sst.Errorf(sst.EIO, "%s: open %s: %w", s.Method, f.Path, err)
		}
		fi, err := fh.Stat()
		if err != nil {
			fh.Close()
			return nil, sst.Errorf(sst.EIO, "%s: stat %s: %w", s.Method, f.Path, err)
		}
		f.Read = time.Now()
		f.Size, f.MTime = fi.Size(), fi.ModTime()
		return fh, nil
	}
	// patch sends the blocks of f (open as fh, hashed as mine) that differ
	// from the joiner's copy theirs, and returns the bytes sent.
	patch := func(f *file, fh *os.File, mine []string, theirs deltaFile, only []transfer.Range) (int64, error) {
		ranges := rangesFrom(f.Size, mine, theirs)
		if only != nil {
			ranges = intersect(ranges, only)
		}
		sent[f.Name] = f.Size
		n := rangeBytes(ranges)
		if len(ranges) == 0 && theirs.Size == f.Size {
			fh.Close()
			return 0, nil
		}
		return n, classify(sess.SendRanges(ctx, f.Name, fh, ranges, f.Size), "send "+f.Name+" to "+peer)
	}
	sendPatch := func(f *file, theirs deltaFile) (int64, error) {
		fh, err := openFor(f)
		if err != nil || fh == nil {
			return 0, err
		}
		mine, err := hashHandle(fh, f.Size, nil)
		if err != nil {
			fh.Close()
			return 0, sst.Errorf(sst.EIO, "%s: read %s: %w", s.Method, f.Path, err)
		}
		return patch(f, fh, mine, theirs, nil)
	}
	// redoLimit is the part of redo log f that matters: its live part, in
	// whole blocks, or nil (everything) when the scan fails.
	redoLimit := func(f *file, fh *os.File) ([]transfer.Range, redoLive) {
		live, err := liveRedo(fh, f.Size)
		if err == nil && underLock && !live.Clean {
			// Under the lock the log stands still; an end that is not the
			// server's marker is not to be trusted. (Before the lock a
			// write in progress explains it, and the locked pass repairs.)
			err = fmt.Errorf("scan ended at LSN %d without the end marker", live.End)
		}
		if err != nil {
			s.Log.Info(fmt.Sprintf("%s: sending or comparing it whole: %v", f.Name, err))
			return nil, live
		}
		return live.rounded(f.Size, redoUnit), live
	}
	send := func(f *file, useDelta bool) error {
		df, hasDelta := delta[f.Name]
		if hasDelta && useDelta {
			_, err := sendPatch(f, df)
			return err
		}
		fh, err := openFor(f)
		if err != nil || fh == nil {
			return err
		}
		sent[f.Name] = f.Size
		if f.Redo && !hasDelta {
			if only, live := redoLimit(f, fh); only != nil {
				f.Sparse = true
				payload -= f.Size - rangeBytes(only)
				sess.SetTotal(payload) // for progress; the joiner's space check took the whole
				s.Log.Info(fmt.Sprintf("%s: sending its live part only, LSN %d to %d (%s of %s)", f.Name, live.Checkpoint, live.End, mb(rangeBytes(only)), mb(f.Size)))
				return classify(sess.SendSparse(ctx, f.Name, fh, only, f.Size), "send "+f.Name+" to "+peer)
			}
		}
		return classify(sess.SendFile(ctx, f.Name, fh), "send "+f.Name+" to "+peer)
	}

	// resend sends files again after they changed: those the joiner
	// already holds a copy of, and big enough to be worth it, as a patch of
	// the blocks that differ from that copy; the rest whole.
	const patchMin = 4 << 20
	resend := func(fs []*file) (int64, error) {
		var cand, whole []*file
		for _, f := range fs {
			if _, had := sent[f.Name]; had && f.Size >= patchMin {
				cand = append(cand, f)
			} else {
				whole = append(whole, f)
			}
		}
		var bytes int64
		if len(cand) > 0 {
			// Hash our side while the joiner hashes its copy.
			var names []string
			handles := map[*file]*os.File{}
			// A redo log sent sparse is compared within its live part only:
			// the joiner holds zeros elsewhere, which recovery never reads.
			limits := map[*file][]transfer.Range{}
			defer func() {
				for _, f := range cand {
					if l := limits[f]; l != nil {
						s.Log.Info(fmt.Sprintf("%s: compared its live part only (%s)", f.Name, mb(rangeBytes(l))))
					}
				}
			}()
			for _, f := range cand {
				fh, err := openFor(f)
				if err != nil {
					for _, h := range handles {
						h.Close()
					}
					return 0, err
				}
				if fh != nil {
					handles[f] = fh
					names = append(names, f.Name)
					if f.Sparse {
						limits[f], _ = redoLimit(f, fh)
					}
				}
			}
			hashed := make(chan map[*file][]string, 1)
			go func() {
				m := map[*file][]string{}
				for f, fh := range handles {
					if h, err := hashHandle(fh, f.Size, limits[f]); err == nil {
						m[f] = h
					}
				}
				hashed <- m
			}()
			var resp hashResp
			req := hashReq{Names: names, Only: map[string][]transfer.Range{}}
			for f, l := range limits {
				if l != nil {
					req.Only[f.Name] = l
				}
			}
			err := sess.Send("hashreq", req)
			if err == nil {
				err = sess.Expect(ctx, "hashes", &resp)
			}
			mine := <-hashed
			if err != nil {
				for _, h := range handles {
					h.Close()
				}
				return 0, classify(err, peer)
			}
			// Only fresh hashes count: an older plan entry may be stale.
			for _, n := range names {
				delete(delta, n)
			}
			for _, df := range resp.Files {
				delta[df.Name] = df
			}
			for _, f := range cand {
				fh, ok := handles[f]
				if !ok {
					continue // vanished
				}
				theirs, ok := delta[f.Name]
				if !ok {
					fh.Close()
					whole = append(whole, f) // the joiner has no copy after all
					continue
				}
				n, err := patch(f, fh, mine[f], theirs, limits[f])
				if err != nil {
					return 0, err
				}
				bytes += n
			}
		}
		for _, f := range whole {
			if err := send(f, false); err != nil {
				return 0, err
			}
			bytes += f.Size
		}
		return bytes, nil
	}

	// Which files must go (again): new ones, and those that changed since
	// they were read. Logs are left to the locked pass.
	byName := map[string]*file{}
	for _, f := range files {
		byName[f.Name] = f
	}
	// The logs are compared block by block again under the lock: kept in
	// the page cache on both sides, that is a memory scan, not a disk read.
	// (Called from SendFile, on this goroutine, as pending adds to byName.)
	sess.Cache(func(name string) bool { f := byName[name]; return f != nil && f.Log })
	var current []*file
	pending := func(withLogs bool) ([]*file, int64, error) {
		now, err := listFiles(d, binlogs, nil)
		if err != nil {
			return nil, 0, err
		}
		current = current[:0]
		var out []*file
		var bytes int64
		for _, nf := range now {
			f, ok := byName[nf.Name]
			if !ok {
				byName[nf.Name] = nf
				f = nf
			}
			ch := true
			if ok && !f.Log {
				if ch, err = f.changed(); err != nil {
					if errors.Is(err, fs.ErrNotExist) && !underLock {
						continue // gone since the listing
					}
					return nil, 0, sst.Errorf(sst.EIO, "%s: %w", s.Method, err)
				}
			}
			current = append(current, f)
			if f.Log && !withLogs {
				continue
			}
			if ch {
				out = append(out, f)
				bytes += nf.Size
			}
		}
		return out, bytes, nil
	}

	// Pass 1, without any lock: everything. Then catch-up passes, still
	// without a lock, while much has changed meanwhile (pages the server
	// flushed during the copy), so the locked pass has little left.
	t1 := time.Now()
	s.Report(progress.Event{Phase: progress.PhaseSending, Total: total, Peer: peer})
	for _, f := range files {
		if err := send(f, true); err != nil {
			return fail(err)
		}
	}
	if _, err := sess.Sync(ctx); err != nil {
		return classify(err, "first pass to "+peer)
	}
	pass1 := time.Since(t1)
	s.Log.Info(fmt.Sprintf("first pass (no lock): %s in %.1fs (%.0f MB/s)", mb(payload), pass1.Seconds(), float64(payload)/1e6/max(pass1.Seconds(), 1e-3)))
	const catchUpPasses = 3
	small := max(int64(64<<20), total/50)
	for pass := 0; pass < catchUpPasses; pass++ {
		ch, bytes, err := pending(false)
		if err != nil {
			return fail(err)
		}
		if bytes <= small {
			break
		}
		tc := time.Now()
		n, err := resend(ch)
		if err != nil {
			return fail(err)
		}
		if _, err := sess.Sync(ctx); err != nil {
			return classify(err, "catch-up pass to "+peer)
		}
		s.Log.Info(fmt.Sprintf("catch-up pass %d (no lock): %d changed files (%s), %s sent in %.1fs", pass+1, len(ch), mb(bytes), mb(n), time.Since(tc).Seconds()))
		if n <= small {
			break // what changes now is little: leave it to the locked pass
		}
	}

	// The locked pass: logs first, then whatever changed.
	// A marker left by an earlier SST must not pass for the server's answer.
	flushed := filepath.Join(s.Datadir, sst.TablesFlushedFile)
	sstErr := filepath.Join(s.Datadir, sst.SSTErrorFile)
	os.Remove(flushed)
	os.Remove(sstErr)
	defer os.Remove(flushed)
	defer os.Remove(sstErr)
	if err := s.Proto.FlushTables(); err != nil {
		return fail(err)
	}
	locked, underLock := true, true
	lockStart := time.Now()
	defer func() {
		if locked {
			s.Proto.Continue()
		}
	}()
	st, err := waitLock(ctx, s, sess, peer)
	if err != nil {
		return fail(err)
	}
	var again int64
	var resent []string
	all, _, err := pending(true)
	if err != nil {
		return fail(err)
	}
	var logs []*file
	for _, f := range all {
		if f.Log {
			logs = append(logs, f)
		}
	}
	nl, err := resend(logs)
	if err != nil {
		return fail(err)
	}
	again += nl
	// The logs are read before any other file is looked at (see the
	// package comment); Sync makes sure the engine has read them.
	if _, err := sess.Sync(ctx); err != nil {
		return classify(err, "logs to "+peer)
	}
	ch, _, err := pending(false)
	if err != nil {
		return fail(err)
	}
	nc, err := resend(ch)
	if err != nil {
		return fail(err)
	}
	again += nc
	for _, f := range ch {
		resent = append(resent, f.Name)
	}
	final := make([]manifestF, 0, len(current))
	for _, f := range current {
		final = append(final, manifestF{Name: f.Name, Size: sent[f.Name]})
	}
	if _, err := sess.Sync(ctx); err != nil {
		return classify(err, "second pass to "+peer)
	}
	if err := s.Proto.Continue(); err != nil {
		return fail(err)
	}
	locked = false
	held := time.Since(lockStart)
	sort.Strings(resent)
	s.Log.Info(fmt.Sprintf("donor write lock held %.1fs (sent %s under it: logs and %d changed files%s)", held.Seconds(), mb(again), len(resent), listTail(resent)))

	if err := sess.Send("manifest", manifest{State: st.String(), Files: final}); err != nil {
		return classify(err, "send to "+peer)
	}
	stats, err := sess.Finish(ctx)
	if err != nil {
		return classify(err, "finish "+peer)
	}
	if err := sess.Expect(ctx, "verified", nil); err != nil {
		return classify(err, peer)
	}
	el := time.Since(t1)
	s.Log.Info(fmt.Sprintf("%s verified %d files, %s in %.1fs (%.0f MB/s, %s on the wire)", peer, len(final), mb(stats.Bytes), el.Seconds(), float64(stats.Bytes)/1e6/max(el.Seconds(), 1e-3), mb(stats.WireBytes)))
	return s.Proto.Done(st)
}

func listTail(names []string) string {
	if len(names) == 0 {
		return ""
	}
	if len(names) > 5 {
		return fmt.Sprintf(": %s, ...", strings.Join(names[:5], ", "))
	}
	return ": " + strings.Join(names, ", ")
}

// gtidState is the donor's position from --gtid and --gtid-domain-id.
func gtidState(s *sst.Session) (sst.State, error) {
	st, err := sst.ParseState(s.Args.GTID)
	if err != nil {
		return st, sst.Errorf(sst.EINVAL, "%s: --gtid: %w", s.Method, err)
	}
	st.Domain = s.Args.GTIDDomainID
	if st.Domain == "" {
		st.Domain = "0"
	}
	return st, nil
}

// waitLock waits for the server's answer to "flush tables", which has no
// timeout of its own, and gives up at once if the joiner goes away
// meanwhile: it sends nothing while the donor waits, so anything the
// session delivers then is the end.
func waitLock(ctx context.Context, s *sst.Session, sess *transfer.Session, peer string) (sst.State, error) {
	wctx, stop := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := sess.Recv(wctx)
		if wctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("unexpected message")
		}
		stop(classify(err, peer+" while the donor waited for the server's lock"))
	}()
	st, err := sst.WaitTablesFlushed(wctx, s.Datadir, 0)
	stop(nil)
	<-done
	if err != nil {
		if cause := context.Cause(wctx); cause != nil && !errors.Is(cause, context.Canceled) && ctx.Err() == nil {
			return st, cause
		}
		return st, err
	}
	return st, nil
}
