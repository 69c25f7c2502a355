package notify

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// Listener is a notify socket of our own, given to mariadbd as its
// NOTIFY_SOCKET, so that its notifications reach us and not systemd
// (which would drop them under NotifyAccess=main anyway).
type Listener struct {
	conn *net.UnixConn
	path string
}

// Listen binds a unix datagram socket at path, replacing a stale one. When
// uid and gid are not -1 the socket is chowned to them with mode 0600 (root
// gives it to mariadbd's user); otherwise it is made writable by anyone.
// The kernel is asked to pass the sender's credentials.
func Listen(path string, uid, gid int) (*Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("notify: remove stale socket %s: %w", path, err)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify: listen %s: %w", path, err)
	}
	l := &Listener{conn: conn, path: path}
	if uid != -1 || gid != -1 {
		if err := os.Chown(path, uid, gid); err != nil {
			l.Close()
			return nil, fmt.Errorf("notify: chown %s: %w", path, err)
		}
		err = os.Chmod(path, 0o600)
	} else {
		err = os.Chmod(path, 0o666)
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("notify: chmod %s: %w", path, err)
	}
	if rc, err := conn.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
		})
	}
	return l, nil
}

// Path is the socket's path, for mariadbd's NOTIFY_SOCKET.
func (l *Listener) Path() string { return l.path }

// Receive blocks for the next message. It returns ErrClosed after Close.
func (l *Listener) Receive() (Message, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		n, oobn, _, _, err := l.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return Message{}, ErrClosed
			}
			return Message{}, fmt.Errorf("notify: receive on %s: %w", l.path, err)
		}
		m := ParseMessage(buf[:n])
		if len(m.Fields) == 0 {
			continue
		}
		if cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, c := range cmsgs {
				if cred, err := unix.ParseUnixCredentials(&c); err == nil {
					m.PID = int(cred.Pid)
				}
			}
		}
		return m, nil
	}
}

// Close stops listening and removes the socket.
func (l *Listener) Close() error {
	err := l.conn.Close()
	os.Remove(l.path)
	return err
}
