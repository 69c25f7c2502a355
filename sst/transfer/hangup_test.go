package transfer

import (
	"context"
	"errors"
	"testing"
	"time"
)

// waitDead blocks a hook until the session has ended, so that what the
// peer sent before hanging up and the end itself are both pending.
func waitDead(t *testing.T, s *Session) {
	select {
	case <-s.dead:
	case <-time.After(10 * time.Second):
		t.Error("the session did not end")
	}
}

// A joiner that acknowledges the end, confirms and hangs up at once (the
// IST joiner does) must not make the donor's Finish or Expect fail: what
// arrived before the hang-up counts. The hook holds the donor back until
// the hang-up is processed, the interleaving a loaded machine produces.
func TestJoinerHangsUpAfterConfirming(t *testing.T) {
	for i := range 20 {
		for _, point := range []string{"barrier", "waitAck"} {
			do := Options{Streams: 2, hook: func(p string, s *Session) {
				if p == point {
					waitDead(t, s)
				}
			}}
			j, d := pair(t, "127.0.0.1", Options{}, do)
			ctx := testCtx(t)
			jerr := make(chan error, 1)
			go func() {
				if _, err := j.Serve(ctx, nil); err != nil {
					jerr <- err
					return
				}
				err := j.Send("received", nil)
				j.Close()
				jerr <- err
			}()
			if _, err := d.Finish(ctx); err != nil {
				t.Fatalf("run %d, held at %s: Finish: %v", i, point, err)
			}
			if err := d.Expect(ctx, "received", nil); err != nil {
				t.Fatalf("run %d, held at %s: Expect: %v", i, point, err)
			}
			if err := <-jerr; err != nil {
				t.Fatalf("joiner: %v", err)
			}
			if _, err := d.Recv(ctx); !errors.Is(err, errPeerClosed) {
				t.Fatalf("after the last message: %v, want the joiner's hang-up", err)
			}
			d.Close()
		}
	}
}

// A message readControl has read is delivered even when this side's
// session ends while it is being queued.
func TestMessageReadAsSessionEnds(t *testing.T) {
	local := errors.New("local failure")
	do := Options{hook: func(p string, s *Session) {
		if p == "inbox" {
			s.fail(local)
			time.Sleep(20 * time.Millisecond) // let a waiting Recv see the end first
		}
	}}
	j, d := pair(t, "127.0.0.1", Options{}, do)
	ctx := testCtx(t)
	got := make(chan error, 1)
	go func() { got <- d.Expect(ctx, "received", nil) }()
	time.Sleep(20 * time.Millisecond) // Recv waiting (only makes the old bug likelier)
	if err := j.Send("received", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Expect: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Expect did not return")
	}
	if _, err := d.Recv(context.Background()); !errors.Is(err, local) {
		t.Fatalf("after the message: %v, want %v", err, local)
	}
}
