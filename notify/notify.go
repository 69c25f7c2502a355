// Package notify is everything galera-supervisor says to systemd: the
// sd_notify protocol on both ends (to systemd, and from mariadbd on a socket
// of our own), the keepalive policy that turns SST progress into
// EXTEND_TIMEOUT_USEC, and the watchdog loop.
//
// It does not know what the node is doing; the supervisor tells it.
package notify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EnvSocket is the environment variable systemd sets for Type=notify units.
const EnvSocket = "NOTIFY_SOCKET"

// Sender sends one notification, a newline-separated list of KEY=VALUE
// assignments, to the service manager.
type Sender interface {
	Notify(state string) error
}

// Discard drops every notification; it stands in when not under systemd.
var Discard Sender = discard{}

type discard struct{}

func (discard) Notify(string) error { return nil }

// Socket sends notifications to a unix datagram socket, as sd_notify(3) does.
// A path starting with '@' is in the abstract namespace.
type Socket struct {
	path string
	mu   sync.Mutex
	conn *net.UnixConn
}

// NewSocket returns a Sender for the socket at path; it dials lazily.
func NewSocket(path string) *Socket { return &Socket{path: path} }

// FromEnv returns a Sender for $NOTIFY_SOCKET, or Discard when it is unset.
// The caller should keep the variable out of its children's environment.
func FromEnv() Sender {
	if p := os.Getenv(EnvSocket); p != "" {
		return NewSocket(p)
	}
	return Discard
}

// Path is the socket's path.
func (s *Socket) Path() string { return s.path }

// Notify sends state in one datagram.
func (s *Socket) Notify(state string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.path, Net: "unixgram"})
		if err != nil {
			return fmt.Errorf("notify: dial %s: %w", s.path, err)
		}
		s.conn = c
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := s.conn.Write([]byte(state)); err != nil {
		// systemd may have been re-executed; redial next time.
		s.conn.Close()
		s.conn = nil
		return fmt.Errorf("notify: send to %s: %w", s.path, err)
	}
	return nil
}

// Close closes the connection, if any.
func (s *Socket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// Message is one parsed notification: its assignments in order.
type Message struct {
	Fields []Field
	PID    int // sender's PID when the kernel passed credentials, else 0
}

// Field is one KEY=VALUE assignment.
type Field struct{ Key, Value string }

// ParseMessage splits a datagram into its assignments. Lines without '=' are
// dropped, as systemd drops them.
func ParseMessage(b []byte) Message {
	var m Message
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			continue
		}
		m.Fields = append(m.Fields, Field{k, v})
	}
	return m
}

// Get returns the last value of key, as systemd uses the last.
func (m Message) Get(key string) (string, bool) {
	for i := len(m.Fields) - 1; i >= 0; i-- {
		if m.Fields[i].Key == key {
			return m.Fields[i].Value, true
		}
	}
	return "", false
}

// String renders m in the wire format.
func (m Message) String() string {
	var b strings.Builder
	for _, f := range m.Fields {
		b.WriteString(f.Key)
		b.WriteByte('=')
		b.WriteString(f.Value)
		b.WriteByte('\n')
	}
	return b.String()
}

// ExtendTimeout is the EXTEND_TIMEOUT_USEC assignment for d.
func ExtendTimeout(d time.Duration) string {
	return "EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10)
}

// parseExtendTimeout reads an EXTEND_TIMEOUT_USEC value.
func parseExtendTimeout(v string) (time.Duration, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 63)
	if err != nil {
		return 0, fmt.Errorf("notify: EXTEND_TIMEOUT_USEC=%q: %w", v, err)
	}
	return time.Duration(n) * time.Microsecond, nil
}

// Status is the STATUS assignment for s, kept to one line.
func Status(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return "STATUS=" + s
}

// ErrClosed is returned by Listener.Receive after Close.
var ErrClosed = errors.New("notify: listener closed")
