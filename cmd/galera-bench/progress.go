package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// bar renders one progress line: label, bar, percent, bytes, elapsed time.
func bar(label string, done, total int64, elapsed time.Duration, width int) string {
	frac := 0.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	fill := int(frac * float64(width))
	return fmt.Sprintf("%-16s [%s%s] %3.0f%%  %s / %s  %5.1fs", label,
		strings.Repeat("#", fill), strings.Repeat(".", width-fill), frac*100,
		human(done), human(total), elapsed.Seconds())
}

// progress shows measure()'s growth against total until the returned stop is
// called: redrawn in place on a terminal, a line every 10 s otherwise.
func (b *bench) progress(ctx context.Context, label string, total int64, measure func() int64) (stop func()) {
	tty := false
	if f, ok := b.stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		every := 500 * time.Millisecond
		if !tty {
			every = 10 * time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				if tty {
					fmt.Fprintf(b.stderr, "\r%s\x1b[K\n", bar(label, measure(), total, time.Since(start), 30))
				}
				return
			case <-t.C:
				line := bar(label, measure(), total, time.Since(start), 30)
				if tty {
					fmt.Fprintf(b.stderr, "\r%s\x1b[K", line)
				} else {
					fmt.Fprintln(b.stderr, line)
				}
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}
