package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify"
	"github.com/galera-supervisor/galera-supervisor/schema"
	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
)

// Before mariadbd starts: its options, user, environment and position.

// loadOptions reads the option files and refuses, naming each file:line,
// an [sst] or [galera-supervisor] value "config check" calls an error: at
// the start, run does not start; on a reload, the last good configuration
// stays.
func (s *Supervisor) loadOptions(ctx context.Context) (Options, error) {
	o, err := s.cfg.LoadOptions(ctx)
	if err != nil {
		return Options{}, err
	}
	if o.Files != nil {
		var bad []string
		for _, f := range schema.CheckSet(o.Files, SSTMethod(o.Files)) {
			if f.Error {
				bad = append(bad, f.String())
			}
		}
		if len(bad) > 0 {
			return Options{}, errors.New(strings.Join(bad, "; "))
		}
	}
	if o.Server == nil {
		o.Server = map[string]string{}
	}
	if o.Client == nil {
		o.Client = map[string]string{}
	}
	// The command line wins over the option files, as for mariadbd.
	AddArgs(o.Server, s.cfg.ExtraArgs)
	return o, nil
}

// credential is the user mariadbd runs as when we are root, nil otherwise.
func credential(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up mariadbd's user %q (option user): %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	gids, _ := u.GroupIds()
	for _, g := range gids {
		if n, err := strconv.Atoi(g); err == nil {
			c.Groups = append(c.Groups, uint32(n))
		}
	}
	if len(c.Groups) == 0 {
		c.Groups = []uint32{uint32(gid)}
	}
	return c, nil
}

// childEnv is env without systemd's variables meant for us, plus ours.
// An empty snapshot leaves the SST to read the option files itself.
func childEnv(env []string, notifySocket, progressSocket, snapshot string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == notify.EnvSocket, k == progress.EnvSocket, k == schema.EnvOptions,
			k == "WATCHDOG_USEC", k == "WATCHDOG_PID",
			strings.HasPrefix(k, "LISTEN_"):
			continue
		}
		out = append(out, kv)
	}
	out = append(out, notify.EnvSocket+"="+notifySocket, progress.EnvSocket+"="+progressSocket)
	if snapshot != "" {
		out = append(out, schema.EnvOptions+"="+snapshot)
	}
	return out
}

// recoverPosition reads grastate.dat and runs --wsrep-recover when the
// seqno is unknown. It returns nil when mariadbd needs no start position.
func (r *runner) recoverPosition(ctx context.Context, datadir, userName string) (*Position, error) {
	s := r.s
	path := filepath.Join(datadir, "grastate.dat")
	g, err := ReadGrastate(path)
	switch {
	case err == nil:
		r.grastate = g
		s.log.Info("read grastate", slog.String("path", path), slog.String("galera_uuid", g.UUID),
			slog.Int64("galera_seqno", g.Seqno), slog.Bool("safe_to_bootstrap", g.SafeToBootstrap))
		if s.cfg.NewCluster && !g.SafeToBootstrap {
			return nil, exitErr(ExitBootstrapRefused, "refusing to bootstrap a new cluster: %s says safe_to_bootstrap: 0 "+
				"(another node may have newer data; bootstrap the most advanced node, or set safe_to_bootstrap: 1 if you are sure)", path)
		}
		if g.Seqno != SeqnoUnknown {
			return nil, nil
		}
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrBadGrastate):
		if errors.Is(err, ErrBadGrastate) {
			// Galera rewrites grastate.dat in place: a crash at that moment
			// leaves it empty or cut short. InnoDB still knows the position.
			if s.cfg.NewCluster {
				return nil, exitErr(ExitBootstrapRefused, "refusing to bootstrap a new cluster: %v: safe_to_bootstrap cannot be read "+
					"(fix or remove the file once you are sure this node has the newest data)", err)
			}
			s.log.Warn("grastate unreadable: taking the position as unknown", slog.Any("error", err))
		}
		// A datadir without grastate.dat: recover only when InnoDB has data
		// (a server turned into a node); an empty one joins by SST, and a
		// recovery run would create files in it.
		if _, err := os.Stat(filepath.Join(datadir, "ibdata1")); err != nil {
			s.log.Info("no grastate and no InnoDB data: nothing to recover", slog.String("path", path))
			return nil, nil
		}
	default:
		return nil, exitErr(ExitRecovery, "%w", err)
	}

	r.view.recovering = true
	r.say(true)
	defer func() { r.view.recovering = false }()
	type result struct {
		pos Position
		err error
	}
	done := make(chan result, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		pos, err := Recover(rctx, RecoverConfig{
			Mariadbd: s.cfg.Mariadbd, Defaults: s.cfg.Defaults, ExtraArgs: s.cfg.ExtraArgs,
			User: userName, Credential: r.cred, Env: r.env,
		})
		done <- result{pos, err}
	}()
	for {
		select {
		case m := <-r.msgs:
			// InnoDB crash recovery extends the start timeout itself: relay.
			if c := notify.Classify(m); c.Extend > 0 {
				r.s.notify(notify.ExtendTimeout(c.Extend))
			}
		case res := <-done:
			if res.err != nil {
				if ctx.Err() != nil {
					return nil, nil
				}
				return nil, exitErr(ExitRecovery, "recover position: %w", res.err)
			}
			s.log.Info("recovered position", slog.String("position", res.pos.String()))
			return &res.pos, nil
		}
	}
}

// CleanSST undoes what a killed SST joiner left in the node's directories:
// a joiner killed while it swapped in a snapshot leaves the old contents
// half moved aside, so this must run before anything reads the datadir.
// A running joiner's work is left alone (sst.Cleanup).
func CleanSST(opts Options, log *slog.Logger) error {
	dirs := sst.DirsFrom(opts.Datadir(), func(o string) string { v, _ := opts.Get(o); return v })
	for _, root := range dirs.Roots() {
		if err := sst.Cleanup(root, log); err != nil {
			return err
		}
	}
	return nil
}

// discardResume removes the stagings a broken SST kept for the next to
// resume from, once the node is Synced and needs none: they must not hold
// disk space for good.
func discardResume(opts Options, log *slog.Logger) {
	dirs := sst.DirsFrom(opts.Datadir(), func(o string) string { v, _ := opts.Get(o); return v })
	for _, root := range dirs.Roots() {
		if err := sst.DiscardResume(root, "the node is Synced", log); err != nil {
			log.Warn("cannot discard the staging kept for a resume", slog.String("path", root), slog.Any("error", err))
		}
	}
}

// outFile returns an *os.File for w: w itself, or a pipe copied into w by
// a goroutine that is not tied to the child's Wait (leftover grandchildren
// holding the pipe must not block it).
func outFile(w io.Writer) (*os.File, func()) {
	if f, ok := w.(*os.File); ok {
		return f, func() {}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, func() {}
	}
	done := make(chan struct{})
	go func() {
		io.Copy(w, pr)
		pr.Close()
		close(done)
	}()
	return pw, func() {
		pw.Close()
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}
}
