package main

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// The socket reads what a supervisor sends systemd: STATUS= lines in order,
// EXTEND_TIMEOUT_USEC= until READY=1, and READY=1 itself.
func TestNotifySocket(t *testing.T) {
	s, err := listenNotify(filepath.Join(t.TempDir(), "notify.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch := make(chan statusLine, 16)
	defer s.subscribe(ch)()
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range []string{"STATUS=starting", "STATUS=receiving SST 10% 1/10 MiB\nEXTEND_TIMEOUT_USEC=45000000",
		"EXTEND_TIMEOUT_USEC=45000000", "READY=1\nSTATUS=synced", "EXTEND_TIMEOUT_USEC=30000000"} {
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.waitReady(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		select {
		case l := <-ch:
			got = append(got, l.Text)
		case <-ctx.Done():
			t.Fatalf("STATUS lines: %q", got)
		}
	}
	if got[0] != "starting" || got[1] != "receiving SST 10% 1/10 MiB" || got[2] != "synced" || s.Status() != "synced" {
		t.Errorf("STATUS lines %q, last %q", got, s.Status())
	}
	// Give the last datagram time to arrive: it must not count.
	time.Sleep(100 * time.Millisecond)
	if n := s.Extends(); n != 2 {
		t.Errorf("%d extensions before READY=1, want 2", n)
	}

	// A supervisor that exits before READY=1 ends the wait.
	s2, err := listenNotify(filepath.Join(t.TempDir(), "notify.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	exited := make(chan struct{})
	close(exited)
	if _, err := s2.waitReady(ctx, exited); err != errExited {
		t.Errorf("waitReady after exit = %v, want errExited", err)
	}
}
