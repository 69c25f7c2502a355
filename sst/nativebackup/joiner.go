package nativebackup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/mbstream"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
	"github.com/galera-supervisor/galera-supervisor/sst/readback"
	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
)

// Joiner listens, prints ready, receives the donor's state and, unless this
// is IST, the mbstream into staging; prepares it and swaps it in; then
// prints the coordinates.
func (Method) Joiner(ctx context.Context, s *sst.Session) error {
	defer logPeakRSS(s)
	addr, err := transfer.ParseAddress(s.Args.Address)
	if err != nil {
		return sst.Errorf(sst.EINVAL, "native-backup: --address %q: %w", s.Args.Address, err)
	}
	addr.Path = ""
	opts, err := transferOptions(s, transfer.Joiner)
	if err != nil {
		return err
	}
	keep, err := sst.NewKeepRule(s.Datadir, s.Option("cpat", ""))
	if err != nil {
		return err
	}

	l, err := transfer.Listen(ctx, addr, opts)
	if err != nil {
		return sst.WithErrno(sst.EBUSY, fmt.Errorf("native-backup: listen on %s: %w", addr, err))
	}
	defer l.Close()
	ready := l.Addr()
	ready.Path = Module + "/" + l.Secret() + "/" + preflightSeg
	if err := s.Proto.Ready(ready.String()); err != nil {
		return err
	}
	s.Report(progress.Event{Phase: progress.PhaseWaiting})
	sess, err := l.Accept(ctx)
	if err != nil {
		return sst.WithErrno(sst.ETIMEDOUT, fmt.Errorf("native-backup: wait for the donor on %s: %w", ready, err))
	}
	l.Close()
	defer sess.Close()
	peer := sess.Peer()

	serveCtx, stopServe := context.WithCancel(ctx)
	defer stopServe()
	served := make(chan error, 1)
	go func() {
		_, err := sess.Serve(serveCtx, nil)
		served <- err
	}()

	var sm stateMsg
	if err := sess.Expect(ctx, msgState, &sm); err != nil {
		return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: receive state from %s: %w", peer, err))
	}
	state, err := sst.ParseState(sm.State)
	if err != nil {
		err = sst.Errorf(sst.EPROTO, "native-backup: state %q from %s: %w", sm.State, peer, err)
		sess.Abort(err)
		return err
	}
	if sm.IST {
		if err := <-served; err != nil {
			return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: IST handshake with %s: %w", peer, err))
		}
		if err := sess.Send(msgReceived, receivedMsg{}); err != nil {
			return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: confirm IST to %s: %w", peer, err))
		}
		s.Log.Info("IST: datadir left as it is", slog.String("sst_peer", peer), slog.Any("state", state))
		// Hanging up at once is fine: the donor's session still delivers
		// the confirmation it read before the hang-up.
		return s.Proto.Coordinates(state)
	}

	prepBin, err := preflight(ctx, s, sm, peer)
	if err != nil {
		sess.Abort(err)
		return err
	}
	staging, err := sst.NewStaging(s.Datadir, keep, s.Log)
	if err != nil {
		sess.Abort(err)
		return err
	}
	swapped := false
	defer func() {
		if !swapped {
			staging.Abort()
		}
	}()
	// Every place a file goes (the joiner's own InnoDB, Aria and binlog
	// directories, the donor's DATA DIRECTORY paths) is checked and gets
	// its staging, and each filesystem its space, before the backup
	// starts. The whole snapshot is extracted and prepared in the
	// datadir's staging first.
	pl, err := sst.NewPlacement(s, s.Layout(), staging, sst.Incoming{Total: sm.Total, Tags: sm.Tags, Ext: sm.Ext, InData: true}, peer)
	if err != nil {
		sess.Abort(err)
		return err
	}
	defer func() {
		if !swapped {
			pl.AbortOthers()
		}
	}()
	// --prepare holds every tablespace open too: refuse before any byte
	// moves when this node's hard limit cannot cover them.
	if _, err := openFilesFor(s, sm.Tablespaces, "joiner", false); err != nil {
		sess.Abort(err)
		return err
	}
	if sm.Preflight {
		if err := sess.Send(msgGo, nil); err != nil {
			return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: tell %s to stream: %w", peer, err))
		}
	}
	if err := receive(ctx, s, sess, staging, sm, peer, opts.NoSync, served); err != nil {
		return err
	}
	if err := checkSnapshot(staging.Dir); err != nil {
		return err
	}
	// The donor's position, read before --prepare rewrites the galera info.
	coords, err := readCoordinates(func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(staging.Dir, name)) })
	if err != nil {
		return sst.WithErrno(sst.EPROTO, fmt.Errorf("native-backup: snapshot from %s: %w", peer, err))
	}
	s.Report(progress.Event{Phase: progress.PhasePreparing, Peer: peer})
	if err := prepare(ctx, s, prepBin, staging.Dir, sm.Tablespaces); err != nil {
		return err
	}
	s.Report(progress.Event{Phase: progress.PhaseMoving, Peer: peer})
	if err := place(s, pl, sm.Ext); err != nil {
		return err
	}
	swapped = true
	s.Report(progress.Event{Phase: progress.PhaseDone, Peer: peer})
	return s.Proto.Coordinates(coords)
}

// receive extracts the donor's stream into staging (each payload read back
// against its CRC as it lands) and confirms receipt to the donor: the
// snapshot is then complete on this node's disk, not yet prepared.
func receive(ctx context.Context, s *sst.Session, sess *transfer.Session, staging *sst.Staging, sm stateMsg, peer string, noSync bool, served <-chan error) error {
	s.Report(progress.Event{Phase: progress.PhaseReceiving, Total: sm.Total, Peer: peer})
	t0 := time.Now()
	var got atomic.Int64
	xs, err := mbstream.Extract(ctx, sess.Stream(streamID), staging.Dir, mbstream.Options{
		NoSync: noSync, // [sst] transfer-sync=0
		// Logged at once: once the donor hears of it, its server may end
		// this one's before the error below is logged.
		ReadBackFailed: func(err error) { s.Log.Error("read back failed", append(readback.Attrs(err), "error", err)...) },
		Progress: func(n int64) {
			got.Store(n)
			s.Report(progress.Event{Phase: progress.PhaseReceiving, Done: n, Total: sm.Total, Peer: peer})
		},
	})
	if errors.Is(err, syscall.ENOSPC) {
		err = sst.Errorf(sst.ENOSPC, "native-backup: not enough space: the disk filled while extracting into %s (%v), with %d MB of the snapshot's %d MB received; its filesystem needs at least %d MB more (plus %d MB reserve); the old datadir is kept, the staging removed",
			staging.Root, err, got.Load()>>20, sm.Total>>20, max(sm.Total-got.Load(), 0)>>20, sst.SpaceReserve>>20)
		sess.Abort(err)
		return err
	}
	if bad := (*readback.MismatchError)(nil); errors.As(err, &bad) {
		err = sst.WithErrno(sst.EIO, fmt.Errorf("native-backup: the snapshot from %s: %w; the old datadir is kept, the staging removed", peer, err))
		sess.Abort(err)
		return err
	}
	if err != nil {
		var pe *transfer.PeerError
		if errors.As(err, &pe) {
			return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: %w", err))
		}
		// A donor whose backup failed ends a short stream, then says why.
		if perr := sess.PeerFailure(peerWait); perr != nil {
			return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: %w (the stream stopped short: %v)", perr, err))
		}
		err = sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: extract the stream from %s into %s: %w", peer, staging.Dir, err))
		sess.Abort(err)
		return err
	}
	if err := <-served; err != nil {
		return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: receive from %s: %w", peer, err))
	}
	if err := sess.Send(msgReceived, receivedMsg{Files: xs.Files, Bytes: xs.Bytes}); err != nil {
		return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: confirm receipt to %s: %w", peer, err))
	}
	s.Log.Info("received the snapshot", slog.Any("files", xs.Files), slog.Any("sst_bytes", xs.Bytes), slog.String("sst_peer", peer),
		slog.Duration("elapsed", time.Since(t0).Round(time.Millisecond)))
	return nil
}

// preflight compares the donor's server and mariadb-backup with this
// joiner's before any data moves, and returns the mariadb-backup that
// prepares the snapshot.
func preflight(ctx context.Context, s *sst.Session, sm stateMsg, peer string) (string, error) {
	if sm.Server != nil {
		if err := s.CheckPreflight(*sm.Server, peer); err != nil {
			return "", err
		}
	}
	return prepareBinary(ctx, s, sm.BackupVersion, peer)
}

// peerWait is how long a joiner whose extraction failed waits for the
// donor's own account of the failure.
const peerWait = time.Second

// checkSnapshot refuses a stream that is not a complete backup.
func checkSnapshot(dir string) error {
	fi, err := os.Stat(filepath.Join(dir, "xtrabackup_checkpoints"))
	if err != nil {
		fi, err = os.Stat(filepath.Join(dir, "mariadb_backup_checkpoints"))
	}
	if err != nil || fi.Size() == 0 {
		return sst.Errorf(sst.ENOENT, "native-backup: the received snapshot in %s has no xtrabackup_checkpoints: not a complete backup", dir)
	}
	return nil
}

// prepare runs mariadb-backup --prepare on the staged snapshot, logging to
// <datadir>/mariadb-backup.prepare.log.
func prepare(ctx context.Context, s *sst.Session, bin, dir string, donorTablespaces int) error {
	// The donor's count, or the staged one if higher: tablespaces created
	// after the backup's checkpoint arrive as redo, which --prepare
	// replays, creating and opening them.
	files, err := openFilesFor(s, max(donorTablespaces, scanDatadir(dir).Tablespaces), "joiner", false)
	if err != nil {
		return err
	}
	spec := prepareSpec{
		TargetDir:           dir,
		OpenFilesLimit:      files.Flag,
		UseMemory:           s.OptionIn(bkGroups, "use-memory", ""),
		InnoDBForceRecovery: s.Args.InnoDBForceRecovery,
		InnoApplyOpts:       s.OptionIn(bkGroups, "inno-apply-opts", ""),
	}
	if spec.UseMemory == "" {
		spec.UseMemory = s.OptionIn(sst.ServerGroups, "innodb-buffer-pool-size", "")
	}
	plog, err := s.OpenToolLog(PrepareLog, "innobackupex-apply")
	if err != nil {
		return sst.WithErrno(sst.EIO, fmt.Errorf("native-backup: %w", err))
	}
	defer plog.Close()
	argv := spec.args()
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.Stdout, cmd.Stderr = plog, plog
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	s.Log.Info("running mariadb-backup --prepare", slog.String("command", bin), slog.String("args", quoteArgs(argv)), slog.String("path", plog.Where()))
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return sst.WithErrno(sst.EINTR, fmt.Errorf("native-backup: mariadb-backup --prepare interrupted: %w", context.Cause(ctx)))
		}
		return sst.Errorf(sst.EINVAL, "native-backup: mariadb-backup --prepare in %s failed (%v): %s (log %s)", dir, err, logErrors(plog.Lines(), 6), plog.Where())
	}
	s.Log.Info("prepared the snapshot", slog.Duration("elapsed", time.Since(t0).Round(time.Millisecond)))
	return nil
}

// backupOnly reports whether a top-level file of a prepared backup is
// mariadb-backup's own metadata, which --move-back leaves behind too.
func backupOnly(name string) bool {
	return strings.HasPrefix(name, "xtrabackup_") || strings.HasPrefix(name, "mariadb_backup_") ||
		name == "backup-my.cnf" || name == "donor_galera_info" || name == "aria_log_control.sst"
}

// place turns the prepared snapshot into the datadir, as mariadb-backup
// --move-back would: the backup's own metadata is removed from staging,
// each file moves to the staging beside its target (InnoDB and Aria files
// to this joiner's own directories for them, binlogs to its log_bin
// directory with an index naming them, a DATA DIRECTORY tablespace to the
// path its .isl names, a MyISAM/Aria DATA/INDEX DIRECTORY file to the
// donor's path with a symlink in the datadir), and all are swapped in
// together, the old contents kept until the swap is complete. It writes
// what it did to <datadir>/mariadb-backup.move.log, the stock method's
// move-back log.
func place(s *sst.Session, pl *sst.Placement, ext []sst.ExtFile) (err error) {
	staging := pl.Data
	mlog, err := s.OpenToolLog(MoveLog, "innobackupex-move")
	if err != nil {
		return sst.WithErrno(sst.EIO, fmt.Errorf("native-backup: %w", err))
	}
	defer mlog.Close()
	say := func(format string, args ...any) {
		fmt.Fprintf(mlog, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
	}
	defer func() {
		if err != nil {
			say("FAILED: %v; the previous datadir is left as it was", err)
		}
	}()
	ents, err := os.ReadDir(staging.Dir)
	if err != nil {
		return sst.WithErrno(sst.EIO, fmt.Errorf("native-backup: read %s: %w", staging.Dir, err))
	}
	say("placing the prepared snapshot from %s into %s (native move, instead of mariadb-backup --move-back)", staging.Dir, staging.Root)
	for _, e := range ents {
		if e.Type().IsRegular() && backupOnly(e.Name()) {
			if err := os.Remove(filepath.Join(staging.Dir, e.Name())); err != nil {
				return sst.WithErrno(sst.EIO, fmt.Errorf("native-backup: remove backup metadata %s: %w", e.Name(), err))
			}
			say("dropped backup metadata %s", e.Name())
		}
	}
	files, err := relocate(s, pl, ext, say)
	if err != nil {
		return err
	}
	stagings, err := pl.Finish(files)
	if err != nil {
		return err
	}
	if err := sst.Swap(stagings...); err != nil {
		return err
	}
	for _, x := range stagings {
		say("swapped the staged files into %s; previous contents removed", x.Root)
	}
	return nil
}

// relocate moves each file of the prepared snapshot that belongs outside
// the datadir into the staging beside its target, and returns the
// snapshot's files under their wire names (see sst.Placement).
func relocate(s *sst.Session, pl *sst.Placement, ext []sst.ExtFile, say func(string, ...any)) ([]sst.ManifestEntry, error) {
	staging := pl.Data
	links := map[string]string{} // symlink in the datadir → wire name
	for _, e := range ext {
		if e.Link != "" {
			links[e.Link] = e.Name
		}
	}
	base, _ := s.Binlog()
	type staged struct{ rel, name string }
	var all []staged
	var out []sst.ManifestEntry
	err := filepath.WalkDir(staging.Dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(staging.Dir, p)
		name := rel
		switch {
		case !strings.Contains(rel, "/"):
			if tag := sst.TagOf(rel, base); tag != "" {
				name = sst.WireName(tag, rel)
			}
		case strings.HasSuffix(rel, ".ibd"):
			// mariadb-backup carries a DATA DIRECTORY tablespace beside
			// its .isl; --move-back puts it where the .isl says.
			if target, err := sst.ISLTarget(strings.TrimSuffix(p, ".ibd") + ".isl"); err == nil {
				name = sst.ExtName(target)
			}
		case links[rel] != "":
			name = links[rel]
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		all = append(all, staged{rel, name})
		out = append(out, sst.ManifestEntry{Path: name, Size: fi.Size()})
		return nil
	})
	carried := map[string]bool{}
	for _, f := range all {
		carried[f.name] = true
	}
	for _, e := range ext {
		if e.Link != "" && !carried[e.Name] {
			s.Log.Warn("the backup mariadb-backup made does not hold a table's file (it leaves out Aria files behind a DATA/INDEX DIRECTORY symlink): the table will not open on this node; join by native-copy, or move the table into the datadir on the donor",
				slog.String("table", e.Table), slog.String("path", e.Path))
			say("table %s: %s is not in the backup", e.Table, e.Path)
		}
	}
	// Moved once the walk is done: a move may create a directory in the
	// datadir's staging (a tagged directory inside the datadir).
	for i := 0; err == nil && i < len(all); i++ {
		f := all[i]
		var x *sst.Staging
		var there string
		if x, there, err = pl.Route(f.name); err != nil || (x == staging && there == f.rel) {
			continue
		}
		if err = x.Adopt(filepath.Join(staging.Dir, f.rel), there); err == nil {
			say("move %s to %s", f.rel, filepath.Join(x.Root, there))
		}
	}
	if err != nil {
		var se *sst.Error
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, sst.Errorf(sst.EIO, "native-backup: place the snapshot: %w", err)
	}
	return out, nil
}
