package nativecopy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
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
	sess, err := transfer.Dial(ctx, addr, secret, opts)
	if err != nil {
		return classify(err, "connect to joiner "+addr.HostPort())
	}
	defer sess.Close()
	d := &donor{ctx: ctx, s: s, sess: sess, peer: sess.Peer(), streams: cmp.Or(opts.Streams, transfer.DefaultStreams)}
	if s.Args.Bypass {
		return d.bypass()
	}
	return d.run()
}

// donor is one SST's sending side: the passes over the datadir and what
// they learned about each file.
type donor struct {
	ctx     context.Context
	s       *sst.Session
	sess    *transfer.Session
	peer    string
	streams int

	dirs      sst.Layout
	binlogs   []string
	preflight *sst.Preflight
	files     []*file // the first listing
	total     int64   // the first listing's bytes
	payload   int64   // what goes over the wire (total less redo holes)

	delta deltaSet // the joiner's copies, by name
	block int64    // the delta's block: the joiner's hashes in any other are not used
	// deltaPlan: the joiner asked for delta, holding an old datadir.
	deltaPlan bool
	sent      map[string]int64 // name → size announced
	byName    map[string]*file // every file seen, by name
	// current is the last listing's files, in pending's order: the
	// locked pass's is the snapshot.
	current []*file
	// Before the lock a file may vanish (DROP, RENAME, TRUNCATE); under it
	// DDL waits, so the locked pass's listing is the snapshot.
	underLock bool
}

// patchMin is the smallest changed file that resend patches rather than
// sends whole.
const patchMin = 4 << 20

func (d *donor) fail(err error) error {
	d.sess.Abort(err)
	return err
}

// bypass sends only the donor's position: IST follows.
func (d *donor) bypass() error {
	st, err := gtidState(d.s)
	if err != nil {
		return d.fail(err)
	}
	d.s.Log.Info("IST possible: sending only the state (bypass)", slog.String("position", st.String()), slog.String("sst_peer", d.peer))
	if err := d.sess.Send("hello", hello{Version: protocolVersion, Bypass: true, State: st.String()}); err != nil {
		return classify(err, "send to "+d.peer)
	}
	if err := d.sess.Expect(d.ctx, "verified", nil); err != nil {
		return classify(err, d.peer)
	}
	return d.s.Proto.Done(st)
}

// run is the full SST: hello and plan, the unlocked passes, the locked
// pass, the manifest.
func (d *donor) run() error {
	if err := d.list(); err != nil {
		return d.fail(err)
	}
	if err := d.greet(); err != nil {
		return err
	}
	t1 := time.Now()
	if err := d.firstPass(); err != nil {
		return err
	}
	if err := d.catchUp(); err != nil {
		return err
	}
	st, final, err := d.lockedPass()
	if err != nil {
		return err
	}
	return d.finish(st, final, t1)
}

// list makes the first listing.
func (d *donor) list() error {
	s := d.s
	d.dirs = s.Layout()
	n, err := maxBinlogs(s)
	if err != nil {
		return err
	}
	_, index := s.Binlog()
	if d.binlogs, err = lastBinlogs(s.Datadir, index, n); err != nil {
		return err
	}
	if d.files, err = listFiles(d.dirs, d.binlogs, s.Log); err != nil {
		return err
	}
	pf, err := s.LocalPreflight()
	if err != nil {
		return err
	}
	d.preflight = &pf
	d.block = deltaBlockFor(pf.PageSize)
	for _, f := range d.files {
		d.total += f.Size
	}
	d.payload = d.total
	d.sent = map[string]int64{}
	d.byName = map[string]*file{}
	for _, f := range d.files {
		d.byName[f.Name] = f
	}
	return nil
}

// greet sends the hello and reads the joiner's plan.
func (d *donor) greet() error {
	d.s.Log.Info("sending files", slog.Int("files", len(d.files)), slog.Int64("sst_bytes", d.total), slog.String("sst_peer", d.peer), slog.Int("streams", d.streams))
	d.sess.SetTotal(d.total)
	h := hello{Version: protocolVersion, Total: d.total, Files: len(d.files), Tags: map[string]int64{}, Ext: extFiles(d.files), Preflight: d.preflight,
		DeltaBlock: d.block}
	if st, err := gtidState(d.s); err == nil {
		h.Cluster = st.UUID
	}
	for _, f := range d.files {
		if tag, _, ok := strings.Cut(f.Name, "/"); ok && strings.HasPrefix(tag, "@") && tag != "@"+sst.TagExt {
			h.Tags[tag[1:]] += f.Size
		}
	}
	for _, e := range h.Ext {
		d.s.Log.Info("sending a table's file to the same path on the joiner", "table", e.Table, "path", e.Path, "bytes", e.Size)
	}
	if err := d.sess.Send("hello", h); err != nil {
		return classify(err, "send to "+d.peer)
	}
	if err := d.readPlan(); err != nil {
		return err
	}
	d.deltaPlan = len(d.delta) > 0
	if d.deltaPlan {
		d.s.Log.Info("delta mode: the joiner holds files already", slog.String("sst_peer", d.peer), slog.Int("files", len(d.delta)),
			slog.Int64("delta_block", d.block))
		d.s.SetDelta()
	}
	// The logs are compared block by block again under the lock: kept in
	// the page cache on both sides, that is a memory scan, not a disk read.
	// (Called from SendFile, on this goroutine, as pending adds to byName.)
	d.sess.Cache(func(name string) bool { f := d.byName[name]; return f != nil && f.Log })
	return nil
}

// readPlan reads the joiner's "delta" batches, if any, and its "plan".
func (d *donor) readPlan() error {
	d.delta = deltaSet{}
	for {
		msg, err := d.sess.Recv(d.ctx)
		if err != nil {
			return classify(err, d.peer)
		}
		var b deltaBatch
		var p plan
		switch msg.Kind {
		case "delta":
			err = msg.Decode(&b)
		case "plan":
			err = msg.Decode(&p)
			b.Files = p.Delta
		default:
			return d.fail(sst.Errorf(sst.EPROTO, "%s: %s sent %q where its plan was expected", d.s.Method, d.peer, msg.Kind))
		}
		if err != nil {
			return d.fail(sst.Errorf(sst.EPROTO, "%s: plan from %s: %w", d.s.Method, d.peer, err))
		}
		if err := d.takeHashes(b.Files); err != nil {
			return d.fail(err)
		}
		if msg.Kind == "plan" {
			return nil
		}
	}
}

// takeHashes adds the joiner's hashes to d.delta. Those of other blocks
// than the donor's are left out (the files go whole), with a warning.
func (d *donor) takeHashes(files []deltaFile) error {
	var skipped int
	var first error
	for _, df := range files {
		err := d.delta.add(df, d.block)
		var bm *blockMismatch
		switch {
		case errors.As(err, &bm):
			skipped++
			first = cmp.Or(first, err)
		case err != nil:
			return sst.Errorf(sst.EPROTO, "%s: %s sent %w", d.s.Method, d.peer, err)
		}
	}
	if skipped > 0 {
		d.s.Log.Warn("delta: the joiner's block hashes do not fit this donor's blocks: those files go whole",
			slog.String("sst_peer", d.peer), slog.Int("files", skipped), slog.Any("error", first))
	}
	return nil
}

// firstPass sends everything, without any lock: the logs last. They go
// again under the lock whatever happens, so the later they go the less
// has changed by then; and a transfer that breaks leaves the joiner's
// staging with data files, which the next SST resumes from, rather than
// logs, which it never does.
func (d *donor) firstPass() error {
	t1 := time.Now()
	d.s.Report(progress.Event{Phase: progress.PhaseSending, Total: d.total, Peer: d.peer})
	for _, logs := range []bool{false, true} {
		for _, f := range d.files {
			if f.Log != logs {
				continue
			}
			if err := d.send(f, true); err != nil {
				return d.fail(err)
			}
		}
	}
	if _, err := d.sess.Sync(d.ctx); err != nil {
		return classify(err, "first pass to "+d.peer)
	}
	pass1 := time.Since(t1)
	d.s.Log.Info("first pass (no lock) done", slog.Int64("bytes", d.payload), slog.Duration("elapsed", pass1.Round(time.Millisecond)), mbps(d.payload, pass1))
	return nil
}

// catchUp re-sends, still without a lock, while much has changed since
// it was read (pages the server flushed during the copy), so the locked
// pass has little left.
func (d *donor) catchUp() error {
	const catchUpPasses = 3
	small := max(int64(64<<20), d.total/50)
	for pass := 0; pass < catchUpPasses; pass++ {
		ch, bytes, err := d.pending(false)
		if err != nil {
			return d.fail(err)
		}
		if bytes <= small {
			break
		}
		tc := time.Now()
		n, err := d.resend(ch)
		if err != nil {
			return d.fail(err)
		}
		if _, err := d.sess.Sync(d.ctx); err != nil {
			return classify(err, "catch-up pass to "+d.peer)
		}
		d.s.Log.Info("catch-up pass (no lock) done", slog.Int("pass", pass+1), slog.Int("changed_files", len(ch)), slog.Int64("changed_bytes", bytes),
			slog.Int64("sent_bytes", n), slog.Duration("elapsed", time.Since(tc).Round(time.Millisecond)))
		if n <= small {
			break // what changes now is little: leave it to the locked pass
		}
	}
	return nil
}

// lockedPass takes the server's write lock, sends the logs and then
// whatever changed, and releases the lock. It returns the position the
// lock gave and the manifest's files.
func (d *donor) lockedPass() (sst.State, []manifestF, error) {
	s := d.s
	// A marker left by an earlier SST must not pass for the server's answer.
	flushed := filepath.Join(s.Datadir, sst.TablesFlushedFile)
	sstErr := filepath.Join(s.Datadir, sst.SSTErrorFile)
	os.Remove(flushed)
	os.Remove(sstErr)
	defer os.Remove(flushed)
	defer os.Remove(sstErr)
	if err := s.Proto.FlushTables(); err != nil {
		return sst.State{}, nil, d.fail(err)
	}
	locked := true
	d.underLock = true
	lockStart := time.Now()
	defer func() {
		if locked {
			s.Proto.Continue()
		}
	}()
	st, err := waitLock(d.ctx, s, d.sess, d.peer)
	if err != nil {
		return st, nil, d.fail(err)
	}
	nl, err := d.resendLogs()
	if err != nil {
		return st, nil, err
	}
	ch, _, err := d.pending(false)
	if err != nil {
		return st, nil, d.fail(err)
	}
	nc, err := d.resend(ch)
	if err != nil {
		return st, nil, d.fail(err)
	}
	final := make([]manifestF, 0, len(d.current))
	for _, f := range d.current {
		final = append(final, manifestF{Name: f.Name, Size: d.sent[f.Name]})
	}
	if _, err := d.sess.Sync(d.ctx); err != nil {
		return st, nil, classify(err, "second pass to "+d.peer)
	}
	if err := s.Proto.Continue(); err != nil {
		return st, nil, d.fail(err)
	}
	locked = false
	held := time.Since(lockStart)
	resent := make([]string, 0, len(ch))
	for _, f := range ch {
		resent = append(resent, f.Name)
	}
	sort.Strings(resent)
	s.Log.Info("donor write lock held; sent the logs and the changed files under it", slog.Duration("held", held.Round(time.Millisecond)), slog.Int64("sent_bytes", nl+nc),
		slog.Int("changed_files", len(resent)), slog.String("changed", listHead(resent)))
	return st, final, nil
}

// resendLogs sends the logs again under the lock, and waits until the
// engine has read them: they are read before any other file is looked at
// (see the package comment).
func (d *donor) resendLogs() (int64, error) {
	all, _, err := d.pending(true)
	if err != nil {
		return 0, d.fail(err)
	}
	var logs []*file
	for _, f := range all {
		if f.Log {
			logs = append(logs, f)
		}
	}
	n, err := d.resend(logs)
	if err != nil {
		return 0, d.fail(err)
	}
	if _, err := d.sess.Sync(d.ctx); err != nil {
		return 0, classify(err, "logs to "+d.peer)
	}
	return n, nil
}

// finish sends the manifest and waits for the joiner's verdict.
func (d *donor) finish(st sst.State, final []manifestF, t1 time.Time) error {
	if err := d.sess.Send("manifest", manifest{State: st.String(), Files: final}); err != nil {
		return classify(err, "send to "+d.peer)
	}
	stats, err := d.sess.Finish(d.ctx)
	if err != nil {
		return classify(err, "finish "+d.peer)
	}
	if err := d.sess.Expect(d.ctx, "verified", nil); err != nil {
		return classify(err, d.peer)
	}
	el := time.Since(t1)
	d.s.Log.Info("the joiner verified the files", slog.String("sst_peer", d.peer), slog.Int("files", len(final)), slog.Int64("sst_bytes", stats.Bytes),
		slog.Duration("elapsed", el.Round(time.Millisecond)), mbps(stats.Bytes, el), slog.Int64("wire_bytes", stats.WireBytes))
	if d.deltaPlan {
		logDelta(d.s.Log, stats.Bytes, d.total)
	}
	return d.s.Proto.Done(st)
}

// openFor opens f for sending and notes what it looked like then; nil
// without error when it vanished before the lock.
func (d *donor) openFor(f *file) (*os.File, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !d.underLock {
			return nil, nil // dropped or renamed meanwhile; the locked pass lists anew
		}
		return nil, sst.Errorf(sst.EIO, "%s: open %s: %w", d.s.Method, f.Path, err)
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, sst.Errorf(sst.EIO, "%s: stat %s: %w", d.s.Method, f.Path, err)
	}
	f.Read = time.Now()
	f.Size, f.MTime = fi.Size(), fi.ModTime()
	return fh, nil
}

// patch sends the blocks of f (open as fh, hashed as mine) that differ
// from the joiner's copy theirs, and returns the bytes sent.
func (d *donor) patch(f *file, fh *os.File, mine []byte, theirs deltaFile, only []transfer.Range) (int64, error) {
	ranges := rangesFrom(f.Size, d.block, mine, theirs)
	if only != nil {
		ranges = intersect(ranges, only)
	}
	d.sent[f.Name] = f.Size
	n := rangeBytes(ranges)
	if len(ranges) == 0 && theirs.Size == f.Size {
		fh.Close()
		return 0, nil
	}
	return n, classify(d.sess.SendRanges(d.ctx, f.Name, fh, ranges, f.Size), "send "+f.Name+" to "+d.peer)
}

// sendPatch hashes f and sends the blocks that differ from theirs.
func (d *donor) sendPatch(f *file, theirs deltaFile) (int64, error) {
	fh, err := d.openFor(f)
	if err != nil || fh == nil {
		return 0, err
	}
	mine, err := hashHandle(fh, f.Size, d.block, nil)
	if err != nil {
		fh.Close()
		return 0, sst.Errorf(sst.EIO, "%s: read %s: %w", d.s.Method, f.Path, err)
	}
	return d.patch(f, fh, mine, theirs, nil)
}

// redoLimit is the part of redo log f that matters: its live part, in
// whole blocks, or nil (everything) when the scan fails.
func (d *donor) redoLimit(f *file, fh *os.File) ([]transfer.Range, redoLive) {
	live, err := liveRedo(fh, f.Size)
	if err == nil && d.underLock && !live.Clean {
		// Under the lock the log stands still; an end that is not the
		// server's marker is not to be trusted. (Before the lock a
		// write in progress explains it, and the locked pass repairs.)
		err = fmt.Errorf("scan ended at LSN %d without the end marker", live.End)
	}
	if err != nil {
		d.s.Log.Info("redo log: sending or comparing it whole", slog.String("file", f.Name), slog.Any("reason", err))
		return nil, live
	}
	return live.rounded(f.Size, redoUnit), live
}

// send sends f: as a patch against the joiner's copy when it has one and
// useDelta, a redo log the joiner has no copy of as its live part only,
// anything else whole.
func (d *donor) send(f *file, useDelta bool) error {
	df, hasDelta := d.delta[f.Name]
	if hasDelta && useDelta {
		_, err := d.sendPatch(f, df)
		return err
	}
	fh, err := d.openFor(f)
	if err != nil || fh == nil {
		return err
	}
	d.sent[f.Name] = f.Size
	if f.Redo && !hasDelta {
		if only, live := d.redoLimit(f, fh); only != nil {
			f.Sparse = true
			d.payload -= f.Size - rangeBytes(only)
			d.sess.SetTotal(d.payload) // for progress; the joiner's space check took the whole
			d.s.Log.Info("redo log: sending its live part only", slog.String("file", f.Name), slog.Uint64("lsn_from", live.Checkpoint),
				slog.Uint64("lsn_to", live.End), slog.Int64("bytes", rangeBytes(only)), slog.Int64("file_bytes", f.Size))
			return classify(d.sess.SendSparse(d.ctx, f.Name, fh, only, f.Size), "send "+f.Name+" to "+d.peer)
		}
	}
	return classify(d.sess.SendFile(d.ctx, f.Name, fh), "send "+f.Name+" to "+d.peer)
}

// resend sends files again after they changed: those the joiner already
// holds a copy of, and big enough to be worth it, as a patch of the
// blocks that differ from that copy; the rest whole.
func (d *donor) resend(files []*file) (int64, error) {
	var cand, whole []*file
	for _, f := range files {
		if _, had := d.sent[f.Name]; had && f.Size >= patchMin {
			cand = append(cand, f)
		} else {
			whole = append(whole, f)
		}
	}
	var bytes int64
	if len(cand) > 0 {
		n, rest, err := d.resendPatches(cand)
		if err != nil {
			return 0, err
		}
		bytes += n
		whole = append(whole, rest...)
	}
	for _, f := range whole {
		if err := d.send(f, false); err != nil {
			return 0, err
		}
		bytes += f.Size
	}
	return bytes, nil
}

// resendPatches asks the joiner for fresh block hashes of its copies of
// cand, hashing ours meanwhile, and sends the blocks that differ. It
// returns the bytes sent and the files the joiner turned out to hold no
// copy of, for resend to send whole.
func (d *donor) resendPatches(cand []*file) (int64, []*file, error) {
	var names []string
	handles := map[*file]*os.File{}
	closeAll := func() {
		for _, h := range handles {
			h.Close()
		}
	}
	// A redo log sent sparse is compared within its live part only:
	// the joiner holds zeros elsewhere, which recovery never reads.
	limits := map[*file][]transfer.Range{}
	defer func() {
		for _, f := range cand {
			if l := limits[f]; l != nil {
				d.s.Log.Info("redo log: compared its live part only", slog.String("file", f.Name), slog.Int64("bytes", rangeBytes(l)))
			}
		}
	}()
	for _, f := range cand {
		fh, err := d.openFor(f)
		if err != nil {
			closeAll()
			return 0, nil, err
		}
		if fh != nil {
			handles[f] = fh
			names = append(names, f.Name)
			if f.Sparse {
				limits[f], _ = d.redoLimit(f, fh)
			}
		}
	}
	// Hash our side while the joiner hashes its copy.
	hashed := make(chan map[*file][]byte, 1)
	go func() {
		m := map[*file][]byte{}
		for f, fh := range handles {
			if h, err := hashHandle(fh, f.Size, d.block, limits[f]); err == nil {
				m[f] = h
			}
		}
		hashed <- m
	}()
	req := hashReq{Names: names, Block: d.block, Only: map[string][]transfer.Range{}}
	for f, l := range limits {
		if l != nil {
			req.Only[f.Name] = l
		}
	}
	// Only fresh hashes count: an older plan entry may be stale.
	for _, n := range names {
		delete(d.delta, n)
	}
	err := d.sess.Send("hashreq", req)
	for more := err == nil; more; {
		var b deltaBatch
		if err = d.sess.Expect(d.ctx, "hashes", &b); err == nil {
			err = d.takeHashes(b.Files)
		}
		more = err == nil && b.More
	}
	mine := <-hashed
	if err != nil {
		closeAll()
		return 0, nil, classify(err, d.peer)
	}
	var bytes int64
	var whole []*file
	for _, f := range cand {
		fh, ok := handles[f]
		if !ok {
			continue // vanished
		}
		theirs, ok := d.delta[f.Name]
		if !ok {
			fh.Close()
			whole = append(whole, f) // the joiner has no copy after all
			continue
		}
		n, err := d.patch(f, fh, mine[f], theirs, limits[f])
		if err != nil {
			return 0, nil, err
		}
		bytes += n
	}
	return bytes, whole, nil
}

// pending lists the files anew and returns those that must go (again):
// new ones, and those that changed since they were read, with their
// bytes. Logs only withLogs (the locked pass sends them first).
func (d *donor) pending(withLogs bool) ([]*file, int64, error) {
	now, err := listFiles(d.dirs, d.binlogs, nil)
	if err != nil {
		return nil, 0, err
	}
	d.current = d.current[:0]
	var out []*file
	var bytes int64
	for _, nf := range now {
		f, ok := d.byName[nf.Name]
		if !ok {
			d.byName[nf.Name] = nf
			f = nf
		}
		ch := true
		if ok && !f.Log {
			if ch, err = f.changed(); err != nil {
				if errors.Is(err, fs.ErrNotExist) && !d.underLock {
					continue // gone since the listing
				}
				return nil, 0, sst.Errorf(sst.EIO, "%s: %w", d.s.Method, err)
			}
		}
		d.current = append(d.current, f)
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

// listHead names the first five of names, with ",..." when there are more.
func listHead(names []string) string {
	if len(names) > 5 {
		return strings.Join(names[:5], ",") + ",..."
	}
	return strings.Join(names, ",")
}

// mbps is the rate of n bytes in d, in MB/s, as an attribute.
func mbps(n int64, d time.Duration) slog.Attr {
	return slog.Int64("mb_per_s", int64(float64(n)/1e6/max(d.Seconds(), 1e-3)))
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
