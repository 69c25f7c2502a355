package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// notifySocket is a node's NOTIFY_SOCKET, listened on as systemd would: the
// supervisor sends it READY=1, STATUS=, EXTEND_TIMEOUT_USEC=, STOPPING=1.
type notifySocket struct {
	path string
	conn *net.UnixConn

	mu      sync.Mutex
	status  string    // the last STATUS=
	ready   time.Time // when READY=1 came; zero before
	extends int       // EXTEND_TIMEOUT_USEC= messages before READY=1
	changed chan struct{}
	subs    []chan<- statusLine
}

// statusLine is one STATUS= the supervisor sent, and when.
type statusLine struct {
	At   time.Time
	Text string
}

func listenNotify(path string) (*notifySocket, error) {
	os.Remove(path)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("listen on notify socket: %w", err)
	}
	s := &notifySocket{path: path, conn: c, changed: make(chan struct{})}
	go s.read()
	return s, nil
}

func (s *notifySocket) read() {
	buf := make([]byte, 8192)
	for {
		k, err := s.conn.Read(buf)
		if err != nil {
			return
		}
		s.handle(string(buf[:k]), time.Now())
	}
}

// handle takes one datagram: newline-separated VAR=value assignments.
func (s *notifySocket) handle(msg string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range strings.Split(msg, "\n") {
		switch {
		case strings.HasPrefix(l, "STATUS="):
			s.status = strings.TrimPrefix(l, "STATUS=")
			for _, c := range s.subs {
				select {
				case c <- statusLine{now, s.status}:
				default: // a slow reader misses a line, not the node
				}
			}
		case strings.HasPrefix(l, "EXTEND_TIMEOUT_USEC=") && s.ready.IsZero():
			s.extends++
		case l == "READY=1" && s.ready.IsZero():
			s.ready = now
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// Status returns the last STATUS= line.
func (s *notifySocket) Status() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Extends counts the EXTEND_TIMEOUT_USEC= messages before READY=1: the
// supervisor extends systemd's start timeout only while the node moves on.
func (s *notifySocket) Extends() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.extends
}

// subscribe sends every later STATUS= line to c until the returned func is
// called.
func (s *notifySocket) subscribe(c chan<- statusLine) (cancel func()) {
	s.mu.Lock()
	s.subs = append(s.subs, c)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, x := range s.subs {
			if x == c {
				s.subs = append(s.subs[:i], s.subs[i+1:]...)
				break
			}
		}
	}
}

// errExited: the supervisor exited before READY=1.
var errExited = errors.New("exited before READY=1")

// waitReady waits for READY=1 and returns when it came; it fails when
// exited closes first.
func (s *notifySocket) waitReady(ctx context.Context, exited <-chan struct{}) (time.Time, error) {
	for {
		s.mu.Lock()
		ready, ch := s.ready, s.changed
		s.mu.Unlock()
		if !ready.IsZero() {
			return ready, nil
		}
		select {
		case <-ch:
		case <-exited:
			return time.Time{}, errExited
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

func (s *notifySocket) Close() error {
	err := s.conn.Close()
	os.Remove(s.path)
	return err
}
