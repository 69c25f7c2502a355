// Package progress carries SST progress from the SST processes up to the
// supervisor: JSON datagrams over a unix socket whose path the supervisor
// puts in mariadbd's environment, which the SST processes inherit.
package progress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// EnvSocket names the environment variable holding the socket path.
const EnvSocket = "GALERA_SUPERVISOR_PROGRESS"

// Phases an SST reports. The supervisor turns them into STATUS= lines.
const (
	PhaseWaiting   = "waiting"   // joiner listening, nothing received yet
	PhaseSending   = "sending"   // donor streaming
	PhaseReceiving = "receiving" // joiner receiving
	PhasePreparing = "preparing" // mariadb-backup --prepare
	PhaseVerifying = "verifying" // checksums, completeness
	PhaseMoving    = "moving"    // swapping the staged datadir in
	PhaseDone      = "done"
	PhaseFailed    = "failed"
)

// Event is one progress report. Done and Total count payload bytes; Total is
// 0 while unknown.
type Event struct {
	Role   string `json:"role"` // "joiner" or "donor"
	Method string `json:"method,omitempty"`
	Phase  string `json:"phase"`
	Done   int64  `json:"done"`
	Total  int64  `json:"total"`
	Peer   string `json:"peer,omitempty"`
	// Delta: the SST sends only what differs from the joiner's old
	// datadir. Done then counts the bytes that differ, moved so far, and
	// Total the donor's whole datadir: no percent or ETA follows from them.
	Delta bool      `json:"delta,omitempty"`
	Err   string    `json:"err,omitempty"`
	PID   int       `json:"pid,omitempty"`
	Time  time.Time `json:"time"`
}

// Reporter receives progress events. Implementations must not block.
type Reporter interface {
	Report(Event)
}

// Func adapts a function to a Reporter.
type Func func(Event)

// Report calls f(e).
func (f Func) Report(e Event) { f(e) }

// Discard drops every event.
var Discard Reporter = Func(func(Event) {})

// Client sends events to a supervisor's socket. Sends never block: when the
// supervisor is gone or slow, events are dropped, since the SST must go on.
type Client struct {
	mu   sync.Mutex
	conn *net.UnixConn
	pid  int
}

// Dial connects to the socket at path.
func Dial(path string) (*Client, error) {
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("progress: dial %s: %w", path, err)
	}
	return &Client{conn: conn, pid: os.Getpid()}, nil
}

// FromEnv returns a Client for the socket named in EnvSocket, or Discard
// when the variable is unset or the socket cannot be reached.
func FromEnv() Reporter {
	path := os.Getenv(EnvSocket)
	if path == "" {
		return Discard
	}
	c, err := Dial(path)
	if err != nil {
		return Discard
	}
	return c
}

// Report sends e, stamping its time and PID when unset.
func (c *Client) Report(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.PID == 0 {
		e.PID = c.pid
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	_, _ = c.conn.Write(b)
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Listener receives events on a unix datagram socket.
type Listener struct {
	conn   *net.UnixConn
	path   string
	events chan Event
	done   chan struct{}
	synced chan struct{}
}

// syncMarker is the datagram Sync sends: never an event's JSON.
var syncMarker = []byte("\x00sync")

// Listen binds a socket at path, replacing a stale one, and makes it
// writable by the SST processes, which run as mariadbd's user.
func Listen(path string) (*Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("progress: remove stale socket: %w", err)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("progress: listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		conn.Close()
		return nil, fmt.Errorf("progress: chmod %s: %w", path, err)
	}
	l := &Listener{conn: conn, path: path, events: make(chan Event, 64), done: make(chan struct{}), synced: make(chan struct{}, 1)}
	go l.loop()
	return l, nil
}

// Path is the socket's path, for EnvSocket.
func (l *Listener) Path() string { return l.path }

// Events delivers received events; it is closed after Close. When the
// consumer lags, the oldest undelivered events are dropped.
func (l *Listener) Events() <-chan Event { return l.events }

func (l *Listener) loop() {
	defer close(l.events)
	buf := make([]byte, 64<<10)
	for {
		n, err := l.conn.Read(buf)
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if bytes.Equal(buf[:n], syncMarker) {
			select {
			case l.synced <- struct{}{}:
			default:
			}
			continue
		}
		var e Event
		if json.Unmarshal(buf[:n], &e) != nil {
			continue
		}
		select {
		case l.events <- e:
		default:
			// Drop the oldest: the newest event carries the freshest totals.
			select {
			case <-l.events:
			default:
			}
			select {
			case l.events <- e:
			default:
			}
		}
	}
}

// Sync returns once every event sent before it was called is in Events
// (or dropped, as Events says), at most after timeout: the socket's queue
// is one, in order, so a marker sent to it comes out after them. One
// caller at a time.
func (l *Listener) Sync(timeout time.Duration) error {
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: l.path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("progress: sync: %w", err)
	}
	defer c.Close()
	select {
	case <-l.synced: // a late answer to an earlier Sync
	default:
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write(syncMarker); err != nil {
		return fmt.Errorf("progress: sync: %w", err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-l.synced:
		return nil
	case <-t.C:
		return fmt.Errorf("progress: sync: no answer within %v", timeout)
	}
}

// Close stops listening and removes the socket.
func (l *Listener) Close() error {
	close(l.done)
	err := l.conn.Close()
	os.Remove(l.path)
	return err
}
