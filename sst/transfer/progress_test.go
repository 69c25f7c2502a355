package transfer

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst/progress"
)

type events struct {
	mu sync.Mutex
	ev []progress.Event
}

func (e *events) Report(ev progress.Event) {
	e.mu.Lock()
	e.ev = append(e.ev, ev)
	e.mu.Unlock()
}

func (e *events) all() []progress.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]progress.Event(nil), e.ev...)
}

func TestProgress(t *testing.T) {
	ctx := testCtx(t)
	var je, de events
	j, d := pair(t, "127.0.0.1", Options{Reporter: &je, Method: "native-copy"},
		Options{Reporter: &de, Method: "native-copy", RateLimit: 2 << 20, Streams: 2})
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), 3<<20, 1)
	sink, _ := OpenSink(t.TempDir(), SinkOptions{NoSync: true})
	defer sink.Close()
	served := make(chan error, 1)
	go func() { _, err := j.Serve(ctx, sink); served <- err }()
	d.SetTotal(3 << 20)
	start := time.Now()
	f, _ := os.Open(filepath.Join(src, "f"))
	d.SendFile(ctx, "f", f)
	if _, err := d.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	// After the data's last event, the ticker is silent: the engine's
	// next phase (verifying, moving) must stay the last word.
	nj, nd := len(je.all()), len(de.all())
	time.Sleep(3 * ProgressInterval)
	if len(je.all()) != nj || len(de.all()) != nd {
		t.Errorf("events after the transfer's end: joiner %d then %d, donor %d then %d", nj, len(je.all()), nd, len(de.all()))
	}
	for _, c := range []struct {
		who  string
		ev   []progress.Event
		role string
	}{{"joiner", je.all(), "joiner"}, {"donor", de.all(), "donor"}} {
		if len(c.ev) < 3 {
			t.Fatalf("%s: %d events in %v", c.who, len(c.ev), el)
		}
		// At most one every ProgressInterval, plus waiting, the end and slack.
		if max := int(el/ProgressInterval) + 4; len(c.ev) > max {
			t.Errorf("%s: %d events in %v, want at most %d", c.who, len(c.ev), el, max)
		}
		last := c.ev[len(c.ev)-1]
		if last.Done != 3<<20 || last.Total != 3<<20 || last.Role != c.role || last.Method != "native-copy" || !strings.Contains(last.Peer, "127.0.0.1") {
			t.Errorf("%s: last event %+v", c.who, last)
		}
		for i := 1; i < len(c.ev); i++ {
			if c.ev[i].Done < c.ev[i-1].Done {
				t.Errorf("%s: progress went back: %+v", c.who, c.ev)
			}
		}
	}
}

func TestRoundtripHostName(t *testing.T) { roundtrip(t, "localhost", Options{}, Options{Streams: 2}) }
