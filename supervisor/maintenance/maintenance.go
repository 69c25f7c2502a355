// Package maintenance keeps a node's maintenance mode, as in Patroni's
// pause: while it is on, the supervisor's HTTP endpoint answers 503 (load
// balancers drain the node), and the supervisor neither bootstraps a
// Primary Component by itself nor gives a start up. The mode is a file in
// the datadir, so that it survives a restart of the supervisor and a
// reboot; "galera-supervisor maintenance" writes it and tells the running
// supervisor, which reads it again.
package maintenance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// File is the mode's file in the datadir; present means on. No SST
// sends it, and the joiner's supervisor keeps it across a joiner SST,
// whose stock mariabackup script removes it (supervisor/ownfiles.go).
const File = "galera-supervisor.maintenance"

// State is the maintenance mode while it is on.
type State struct {
	Since  time.Time `json:"since"`
	By     string    `json:"by,omitempty"`     // who turned it on: user@host
	Reason string    `json:"reason,omitempty"` // as given to "maintenance on"
}

// Read reads the mode from datadir: nil when it is off.
func Read(datadir string) (*State, error) {
	path := filepath.Join(datadir, File)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read maintenance mode: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		// Someone touched it by hand: on is what they meant.
		st = State{Reason: fmt.Sprintf("%s is not JSON: %v", path, err)}
		if fi, serr := os.Stat(path); serr == nil {
			st.Since = fi.ModTime().UTC()
		}
	}
	return &st, nil
}

// Write turns the mode on in datadir, atomically; the file belongs to the
// datadir's owner, as everything in it.
func Write(datadir string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(datadir, File)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o640); err != nil {
		return fmt.Errorf("write maintenance mode: %w", err)
	}
	if fi, err := os.Stat(datadir); err == nil {
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
			os.Chown(tmp, int(sys.Uid), int(sys.Gid))
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write maintenance mode: %w", err)
	}
	return nil
}

// Clear turns the mode off in datadir.
func Clear(datadir string) error {
	if err := os.Remove(filepath.Join(datadir, File)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clear maintenance mode: %w", err)
	}
	return nil
}

// SocketName is the supervisor's control socket in its runtime directory:
// how "galera-supervisor maintenance" reaches a supervisor that is not a
// systemd unit's (a unit's gets SIGUSR2 over D-Bus).
const SocketName = "control.sock"

// request asks the supervisor to read the mode again; Datadir guards
// against the wrong node's supervisor.
type request struct {
	Op      string `json:"op"`
	Datadir string `json:"datadir,omitempty"`
}

// Reply is the supervisor's answer: the mode it applied.
type Reply struct {
	Datadir     string `json:"datadir"`
	Maintenance *State `json:"maintenance,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Server answers on the control socket.
type Server struct {
	ln      *net.UnixListener
	datadir string
	apply   func() (*State, error)
}

// Listen listens on dir/SocketName, readable by its owner only (and
// root). apply reads the mode again and puts it in force.
func Listen(dir, datadir string, uid, gid int, apply func() (*State, error)) (*Server, error) {
	path := filepath.Join(dir, SocketName)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control socket: remove stale %s: %w", path, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if uid >= 0 {
		os.Chown(path, uid, gid)
	}
	return &Server{ln: ln, datadir: datadir, apply: apply}, nil
}

// Serve answers until ctx is done, then removes the socket.
func (s *Server) Serve(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		go s.answer(c)
	}
}

func (s *Server) answer(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var req request
	line, err := bufio.NewReader(io.LimitReader(c, 16<<10)).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	rep := Reply{Datadir: s.datadir}
	switch {
	case err != nil:
		rep.Error = "bad request: " + err.Error()
	case req.Op != "maintenance":
		rep.Error = fmt.Sprintf("unknown request %q", req.Op)
	case req.Datadir != "" && filepath.Clean(req.Datadir) != filepath.Clean(s.datadir):
		rep.Error = fmt.Sprintf("this supervisor runs the node of datadir %s, not %s", s.datadir, req.Datadir)
	default:
		rep.Maintenance, err = s.apply()
		if err != nil {
			rep.Error = err.Error()
		}
	}
	json.NewEncoder(c).Encode(rep)
}

// ErrNotRunning is returned by Tell when no supervisor answers on the
// control socket.
var ErrNotRunning = errors.New("no supervisor answers")

// Tell asks the supervisor listening in runtime dir dir to read the mode
// of the node of datadir again, and returns the mode it applied.
func Tell(ctx context.Context, dir, datadir string) (*State, error) {
	path := filepath.Join(dir, SocketName)
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w on %s", ErrNotRunning, path)
		}
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(request{Op: "maintenance", Datadir: datadir}); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	var rep Reply
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if rep.Error != "" {
		return nil, fmt.Errorf("supervisor on %s: %s", path, rep.Error)
	}
	return rep.Maintenance, nil
}
