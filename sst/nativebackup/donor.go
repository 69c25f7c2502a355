package nativebackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
)

// Backup groups, as the stock script's bkgroups and encgroups.
var (
	bkGroups  = []string{"sst", "xtrabackup", "mariabackup"}
	encGroups = []string{"--mysqld", "sst", "xtrabackup", "mariabackup"}
)

// Donor sends the state, and for a full SST the mariadb-backup stream, then
// prints done once the joiner confirmed it has everything.
func (Method) Donor(ctx context.Context, s *sst.Session) (err error) {
	defer logPeakRSS(s)
	st, err := donorState(s.Args)
	if err != nil {
		return err
	}
	addr, secret, err := parseAddress(s.Args.Address)
	if err != nil {
		return err
	}
	opts, err := transferOptions(s, transfer.Donor)
	if err != nil {
		return err
	}
	if s.Args.Bypass {
		return donateIST(ctx, s, st, addr, secret, opts)
	}

	bin, err := backupBinary(s)
	if err != nil {
		return err
	}
	// Credentials before dialling: a bad account fails fast, and the joiner
	// hears why.
	user, password, cleanup, credErr := backupCredentials(ctx, s)
	defer cleanup()

	scan := scanDatadir(s.Datadir)
	files, filesErr := openFilesFor(s, scan.Tablespaces, "donor", hasCloseFiles(s.OptionIn(bkGroups, "inno-backup-opts", "")))
	sm := stateMsg{State: st.String(), Total: scan.Payload, Tablespaces: scan.Tablespaces, Preflight: joinerPreflights(addr)}
	if sm.Tags, sm.Ext, err = announce(s); err != nil {
		return err
	}
	for tag, n := range sm.Tags {
		if rel, err := filepath.Rel(s.Datadir, s.Layout().Tags[tag]); err != nil || !filepath.IsLocal(rel) {
			sm.Total += n // outside the datadir: scanDatadir did not count it
		}
	}
	for _, e := range sm.Ext {
		sm.Total += e.Size
	}
	var pfErr error
	if sm.Preflight {
		if sm.BackupVersion, pfErr = backupVersion(ctx, bin, s.Datadir); pfErr != nil {
			pfErr = sst.Errorf(sst.EINVAL, "native-backup: %v", pfErr)
		} else {
			var server sst.Preflight
			server, pfErr = s.LocalPreflight()
			sm.Server = &server
		}
	}

	sess, err := transfer.Dial(ctx, addr, secret, opts)
	if err != nil {
		return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: connect to joiner %s: %w", addr, err))
	}
	defer sess.Close()
	if err := errors.Join(credErr, filesErr, pfErr); err != nil {
		sess.Abort(err)
		return err
	}
	sess.SetTotal(sm.Total)
	if err := sess.Send(msgState, sm); err != nil {
		return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: send state to %s: %w", sess.Peer(), err))
	}
	if sm.Preflight {
		// The joiner's preflight; a refusal arrives as its error.
		if err := sess.Expect(ctx, msgGo, nil); err != nil {
			return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: %s refused in its preflight: %w", sess.Peer(), err))
		}
	}

	if err := runBackup(ctx, s, sess, bin, user, password, files); err != nil {
		sess.Abort(err)
		return err
	}
	fin, err := sess.Finish(ctx)
	if err != nil {
		return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: finish transfer to %s: %w", sess.Peer(), err))
	}
	var rcv receivedMsg
	if err := sess.Expect(ctx, msgReceived, &rcv); err != nil {
		return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: wait for %s to confirm receipt: %w", sess.Peer(), err))
	}
	s.Log.Info("the joiner confirmed receipt", slog.String("sst_peer", sess.Peer()), slog.Any("files", rcv.Files), slog.Any("sst_bytes", rcv.Bytes), slog.Any("wire_bytes", fin.WireBytes))
	return s.Proto.Done(st)
}

// announce lists what the backup carries of each tagged directory, in
// bytes, and the files outside the donor's directories that its tables
// point to, which the joiner places where they belong.
func announce(s *sst.Session) (map[string]int64, []sst.ExtFile, error) {
	l := s.Layout()
	tags := map[string]int64{}
	base, index := s.Binlog()
	for tag, dir := range l.Tags {
		tags[tag] = 0 // announced even when empty: the joiner replaces its old files
		if tag == sst.TagBinlog {
			continue
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && e.Type().IsRegular() && sst.TagOf(e.Name(), "") == tag {
				tags[tag] += fi.Size()
			}
		}
	}
	if base != "" {
		// mariadb-backup --galera-info carries the current binlog: the
		// index's last line.
		if b, err := os.ReadFile(index); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				last := f[len(f)-1]
				if !filepath.IsAbs(last) {
					last = filepath.Join(s.Datadir, last)
				}
				if fi, err := os.Stat(last); err == nil {
					tags[sst.TagBinlog] = fi.Size()
				}
			}
		}
	}
	ext, err := l.ScanExt(s.Log)
	if err != nil {
		return nil, nil, err
	}
	return tags, ext, nil
}

func donateIST(ctx context.Context, s *sst.Session, st sst.State, addr transfer.Address, secret string, opts transfer.Options) error {
	// The stock script releases the server at once: nothing is copied.
	if err := s.Proto.Continue(); err != nil {
		return err
	}
	sess, err := transfer.Dial(ctx, addr, secret, opts)
	if err != nil {
		return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: connect to joiner %s: %w", addr, err))
	}
	defer sess.Close()
	if err := sess.Send(msgState, stateMsg{State: st.String(), IST: true}); err != nil {
		return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: send state to %s: %w", sess.Peer(), err))
	}
	if _, err := sess.Finish(ctx); err != nil {
		return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: finish IST handshake with %s: %w", sess.Peer(), err))
	}
	if err := sess.Expect(ctx, msgReceived, nil); err != nil {
		return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: wait for %s to confirm IST state: %w", sess.Peer(), err))
	}
	s.Log.Info("IST: sent state", slog.Any("state", st), slog.String("sst_peer", sess.Peer()))
	return s.Proto.Done(st)
}

// backupCredentials returns the account mariadb-backup connects with:
// wsrep_sst_auth when set (user:password, password only in MYSQL_PWD, as
// the stock script does; an empty password suits unix_socket accounts), or
// else a temporary account, which cleanup drops however the SST ends.
func backupCredentials(ctx context.Context, s *sst.Session) (user, password string, cleanup func(), err error) {
	cleanup = func() {}
	auth := s.Env.Auth
	if auth == "" {
		auth = s.Option("wsrep-sst-auth", "")
	}
	if auth != "" {
		user, password, _ = strings.Cut(auth, ":")
		return user, password, cleanup, nil
	}
	if s.Args.Socket == "" {
		return "", "", cleanup, sst.Errorf(sst.EINVAL, "native-backup: wsrep_sst_auth is empty and the server gave no --socket to create a temporary SST user")
	}
	db, admin, err := connectAdmin(ctx, s.Args.Socket)
	if err != nil {
		return "", "", cleanup, sst.WithErrno(sst.EACCES, fmt.Errorf("native-backup: %w", err))
	}
	if err := sweepTempUsers(ctx, db, s.Log); err != nil {
		s.Log.Warn("native-backup: cannot drop stale SST users", slog.Any("error", err))
	}
	u, err := createTempUser(ctx, db, s.Log)
	if err != nil {
		db.Close()
		return "", "", cleanup, sst.WithErrno(sst.EACCES, fmt.Errorf("native-backup: %w", err))
	}
	s.Log.Info("created temporary SST user", slog.String("sst_user", u.Name), slog.String("as", admin), slog.String("privileges", TempUserPrivileges))
	cleanup = func() {
		defer db.Close()
		if err := u.drop(ctx); err != nil {
			s.Log.Error("native-backup: cannot drop the temporary SST user", slog.String("sst_user", u.Name), slog.Any("error", err))
			return
		}
		s.Log.Info("dropped temporary SST user", slog.String("sst_user", u.Name))
	}
	return u.Name, u.Password, cleanup, nil
}

// runBackup runs mariadb-backup --backup and streams its stdout to the
// joiner. Its stderr goes to <datadir>/mariadb-backup.backup.log; on failure
// the log's error lines travel to the joiner too.
func runBackup(ctx context.Context, s *sst.Session, sess *transfer.Session, bin, user, password string, files openFilesPlan) error {
	tmp, err := os.MkdirTemp(s.OptionIn(encGroups, "tmpdir", ""), "native-backup-")
	if err != nil {
		return sst.WithErrno(sst.EIO, fmt.Errorf("native-backup: create target directory: %w", err))
	}
	defer os.RemoveAll(tmp)
	spec := backupSpec{
		DefaultsFile:        s.Args.DefaultsFile,
		DefaultsExtraFile:   s.Args.DefaultsExtraFile,
		DefaultsGroupSuffix: s.Args.DefaultsGroupSuffix,
		Datadir:             s.Datadir,
		TargetDir:           tmp,
		TmpDir:              tmp,
		Parallel:            s.OptionIn(encGroups, "backup-threads", ""),
		User:                user,
		Socket:              s.Args.Socket,
		OpenFilesLimit:      files.Flag,
		InnoBackupOpts:      s.OptionIn(bkGroups, "inno-backup-opts", ""),
		MysqldArgs:          s.Args.MysqldArgs,
	}
	if s.Option("use-extra", "0") == "1" {
		port := s.OptionIn(sst.ServerGroups, "extra-port", "")
		if port == "" {
			return sst.Errorf(sst.EINVAL, "native-backup: [sst] use-extra=1 but no extra-port in the server's option groups")
		}
		spec.Host, spec.Port = "127.0.0.1", port
	}
	blog, err := s.OpenToolLog(BackupLog, "innobackupex-backup")
	if err != nil {
		return sst.WithErrno(sst.EIO, fmt.Errorf("native-backup: %w", err))
	}
	defer blog.Close()

	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	argv := spec.args()
	cmd := exec.CommandContext(bctx, bin, argv...)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+password)
	cmd.Stderr = blog
	cmd.Dir = s.Datadir
	// Dies with us even if we are SIGKILLed: no orphaned backup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return sst.WithErrno(sst.EIO, fmt.Errorf("native-backup: pipe: %w", err))
	}
	s.Log.Info("running mariadb-backup --backup", slog.String("command", bin), slog.String("args", quoteArgs(argv)), slog.String("path", blog.Where()))
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return sst.WithErrno(errNoBackupTool, fmt.Errorf("native-backup: start %s: %w", bin, err))
	}
	s.Report(progress.Event{Phase: progress.PhaseSending, Peer: sess.Peer()})
	xr := &exitReader{r: stdout, wait: cmd.Wait}
	n, sendErr := sess.SendStream(bctx, streamID, xr)
	if sendErr != nil {
		cancel() // the joiner is gone or failed: stop the backup
	}
	waitErr := xr.err
	if !xr.waited {
		waitErr = cmd.Wait()
	}
	switch {
	case ctx.Err() != nil:
		return sst.WithErrno(sst.EINTR, fmt.Errorf("native-backup: backup interrupted: %w", context.Cause(ctx)))
	case sendErr != nil && !(xr.waited && waitErr != nil):
		return sst.WithErrno(sst.EPIPE, fmt.Errorf("native-backup: stream backup to %s: %w", sess.Peer(), sendErr))
	case waitErr != nil:
		// The stock script's status for a failed mariadb-backup is 22.
		return sst.Errorf(sst.EINVAL, "native-backup: mariadb-backup --backup failed (%v) after %d bytes: %s (log %s on the donor)",
			waitErr, n, logErrors(blog.Lines(), 6), blog.Where())
	}
	s.Log.Info("mariadb-backup streamed the backup", slog.Any("sst_bytes", n), slog.Duration("elapsed", time.Since(t0).Round(time.Millisecond)))
	return nil
}

// exitReader reads mariadb-backup's stdout. At its end it waits for the
// process and turns a failed exit into a read error, so that the stream is
// not ended cleanly: a joiner never takes a failed backup's output for a
// complete stream, and waits for the donor's reason instead.
type exitReader struct {
	r      io.Reader
	wait   func() error
	waited bool
	err    error // the process's exit, once waited
}

var errBackupExit = errors.New("mariadb-backup failed")

func (x *exitReader) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	if err == io.EOF && !x.waited {
		x.waited = true
		if x.err = x.wait(); x.err != nil {
			return n, errBackupExit
		}
	}
	return n, err
}
