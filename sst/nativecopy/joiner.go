package nativecopy

import (
	"context"
	"errors"
	"log/slog"
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
		return bypass(s, sess, h, peer)
	}

	keep, err := sst.NewKeepRule(s.Datadir, s.Option("cpat", ""))
	if err != nil {
		return fail(err)
	}
	st, err := sst.ResumeStaging(s.Datadir, keep, s.Log, h.Cluster)
	if err != nil {
		return fail(err)
	}
	var pl *sst.Placement
	defer func() {
		switch {
		case err == nil:
		case pl != nil:
			endStaging(s, pl, err)
		case st.Resumed:
			st.Keep() // refused before any byte moved: what it held stays
		default:
			st.Abort()
		}
	}()
	s.Log.Info("receiving files", slog.Int("files", h.Files), slog.Int64("sst_bytes", h.Total), slog.String("sst_peer", peer), slog.String("path", st.Dir))
	if err := preflight(s, h, peer); err != nil {
		return fail(err)
	}
	in := sst.Incoming{Total: h.Total, Tags: h.Tags, Ext: h.Ext, Cluster: h.Cluster, SpaceLater: true}
	if pl, err = sst.NewPlacement(s, s.Layout(), st, in, peer); err != nil {
		return fail(err)
	}
	basis, err := planBasis(s, pl, h, peer)
	if err != nil {
		var se *sst.Error
		if errors.As(err, &se) && se.Errno == sst.ENOSPC {
			pl = nil // refused before any byte moved, as by NewPlacement's own check: a resumed staging stays
		}
		return fail(err)
	}
	sink, err := transfer.OpenSink(st.Dir, transfer.SinkOptions{NoSync: opts.NoSync, Route: pl.SinkRoute, Log: s.Log, Patch: patcher(pl)})
	if err != nil {
		return fail(sst.Errorf(sst.EIO, "%s: %w", s.Method, err))
	}
	defer sink.Close()
	for _, b := range deltaBatches(basis, maxBatchBytes) {
		if err := sess.Send("delta", deltaBatch{Files: b}); err != nil {
			return classify(err, peer)
		}
	}
	if err := sess.Send("plan", plan{}); err != nil {
		return classify(err, peer)
	}

	t0 := time.Now()
	man, stats, err := receive(ctx, s, sess, sink, pl, h, peer)
	if err != nil {
		return err
	}
	el := time.Since(t0)
	s.Log.Info("received files", slog.Int64("sst_bytes", stats.Bytes), slog.String("sst_peer", peer), slog.Duration("elapsed", el.Round(time.Millisecond)),
		mbps(stats.Bytes, el), slog.Duration("syncfs", stats.SyncTime.Round(time.Millisecond)))
	if len(basis) > 0 {
		logDelta(s.Log, stats.Bytes, h.Total)
	}

	// A delta's figures stay on STATUS= to the end: "delta: X of Y differ".
	var moved, total int64
	if len(basis) > 0 {
		moved, total = stats.Bytes, h.Total
	}
	s.Report(progress.Event{Phase: progress.PhaseVerifying, Peer: peer, Done: moved, Total: total})
	state, err := sst.ParseState(man.State)
	if err != nil {
		return fail(sst.Errorf(sst.EPROTO, "%s: state from %s: %w", s.Method, peer, err))
	}
	stagings, err := pl.Finish(man.entries())
	if err != nil {
		return fail(err)
	}
	s.Report(progress.Event{Phase: progress.PhaseMoving, Peer: peer, Done: moved, Total: total})
	if err := sst.Swap(stagings...); err != nil {
		return fail(err)
	}
	s.Log.Info("new datadir in place; previous contents removed", slog.String("sst_peer", peer), slog.Int("files", len(man.Files)))
	if err := sess.Send("verified", nil); err != nil {
		s.Log.Warn("cannot tell the donor the data is verified", slog.String("sst_peer", peer), slog.Any("error", err))
	}
	return s.Proto.Coordinates(state)
}

// receive runs the transfer: the donor's chunks into sink and, beside
// them, its control messages up to the manifest; it returns once both ended.
func receive(ctx context.Context, s *sst.Session, sess *transfer.Session, sink *transfer.Sink, pl *sst.Placement, h hello, peer string) (manifest, transfer.Stats, error) {
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
	man, merr := control(sctx, sess, pl, peer)
	var se *sst.Error
	if errors.As(merr, &se) {
		sess.Abort(merr) // our own verdict: tell the donor, end Serve
	}
	res := <-done
	// The transfer's own error says most; a cancelled Serve only echoes ours.
	if res.err != nil && !(merr != nil && errors.Is(res.err, context.Canceled)) {
		if errors.Is(res.err, syscall.ENOSPC) {
			err := noSpace(pl, res.err, h.Total, sink.Stats().Bytes)
			sess.Abort(err)
			return manifest{}, transfer.Stats{}, err
		}
		return manifest{}, transfer.Stats{}, classify(res.err, "receive from "+peer)
	}
	if merr != nil {
		return manifest{}, transfer.Stats{}, classify(merr, peer)
	}
	return man, res.stats, nil
}

// bypass takes the donor's position with IST to follow: the datadir stays,
// only leftovers of an interrupted earlier SST go.
func bypass(s *sst.Session, sess *transfer.Session, h hello, peer string) error {
	fail := func(err error) error {
		sess.Abort(err)
		return err
	}
	st, err := sst.ParseState(h.State)
	if err != nil {
		return fail(sst.Errorf(sst.EPROTO, "%s: bypass state from %s: %w", s.Method, peer, err))
	}
	if err := sst.Recover(s.Datadir, s.Log); err != nil {
		return fail(err)
	}
	if err := sst.DiscardResume(s.Datadir, "IST follows, the datadir stays", s.Log); err != nil {
		s.Log.Warn("cannot discard the staging kept for a resume", slog.Any("error", err))
	}
	s.Log.Info("donor sent bypass: IST will follow; datadir left as it is", slog.String("sst_peer", peer), slog.String("position", st.String()))
	if err := sess.Send("verified", nil); err != nil {
		return classify(err, peer)
	}
	return s.Proto.Coordinates(st)
}

// preflight compares the donor's server with this joiner's before any
// byte moves, and logs what it found.
func preflight(s *sst.Session, h hello, peer string) error {
	if h.Preflight == nil {
		s.Log.Warn("the donor sent no preflight (an older version): page size, lower_case_table_names and encryption keys are not compared", "peer", peer)
		return nil
	}
	return s.CheckPreflight(*h.Preflight, peer)
}

// noSpace is the error of a disk that filled during the transfer, naming
// the file being written.
func noSpace(pl *sst.Placement, err error, total, got int64) error {
	var fe *transfer.FileError
	name := ""
	if errors.As(err, &fe) {
		name = fe.Name
	}
	return pl.NoSpace(name, total, got)
}

// control answers the donor's requests until its manifest arrives:
// "hashreq" asks for the block hashes of staged files (complete, since the
// donor synced first), so that a file that changed on the donor is patched
// rather than sent again.
func control(ctx context.Context, sess *transfer.Session, pl *sst.Placement, peer string) (manifest, error) {
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
			if err := answerHashes(sess, pl, req, peer); err != nil {
				return manifest{}, err
			}
		default:
			return manifest{}, sst.Errorf(sst.EPROTO, "native-copy: unexpected %q message from %s", msg.Kind, peer)
		}
	}
}

// answerHashes sends the block hashes of the staged files req names, in
// batches; none to an older donor, which names no block (it sends those
// files whole).
func answerHashes(sess *transfer.Session, pl *sst.Placement, req hashReq, peer string) error {
	var files []deltaFile
	if req.Block != 0 && !validBlock(req.Block) {
		return sst.Errorf(sst.EPROTO, "native-copy: %s asks for hashes of %d-byte blocks: want a power of two from 4 KiB to 1 MiB", peer, req.Block)
	}
	for _, name := range req.Names {
		if req.Block == 0 {
			break
		}
		df, err := hashStaged(pl, name, req.Block, req.Only[name])
		if err != nil {
			var se *sst.Error
			if errors.As(err, &se) {
				return err
			}
			continue // not staged: the donor sends it whole
		}
		files = append(files, df)
	}
	batches := deltaBatches(files, maxBatchBytes)
	if len(batches) == 0 {
		batches = [][]deltaFile{nil}
	}
	for i, b := range batches {
		if err := sess.Send("hashes", deltaBatch{Files: b, More: i < len(batches)-1}); err != nil {
			return err
		}
	}
	return nil
}
