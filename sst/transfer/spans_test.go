package transfer

import (
	"math/rand/v2"
	"testing"
)

func TestSpans(t *testing.T) {
	var s spans
	for _, c := range []struct {
		start, end int64
		ok         bool
	}{
		{10, 20, true}, {30, 40, true}, {20, 30, true}, // joins both sides
		{0, 5, true}, {5, 10, true}, {39, 41, false}, {0, 1, false}, {45, 50, true},
		{44, 46, false}, {40, 45, true}, {50, 50, true},
	} {
		if got := s.add(c.start, c.end); got != c.ok {
			t.Fatalf("add(%d, %d) = %v, want %v; set %v", c.start, c.end, got, c.ok, s)
		}
	}
	if len(s) != 1 || s[0] != (span{0, 50}) {
		t.Fatalf("set = %v, want [{0 50}]", s)
	}
}

// Against a byte map: chunks in random order, some sent twice.
func TestSpansRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		const n = 64
		var s spans
		seen := make([]bool, n*8)
		for k := 0; k < 3*n; k++ {
			c := rng.IntN(n)
			l := 1 + rng.IntN(8)
			start, end := int64(c*8), int64(c*8+l)
			want := true
			for b := start; b < end; b++ {
				want = want && !seen[b]
			}
			if got := s.add(start, end); got != want {
				t.Fatalf("trial %d: add(%d, %d) = %v, want %v", trial, start, end, got, want)
			}
			if want {
				for b := start; b < end; b++ {
					seen[b] = true
				}
			}
		}
		var count int64
		for _, b := range seen {
			if b {
				count++
			}
		}
		if s.covered() != count {
			t.Fatalf("trial %d: covered %d, want %d", trial, s.covered(), count)
		}
		for i := 1; i < len(s); i++ {
			if s[i-1].end >= s[i].start {
				t.Fatalf("trial %d: not disjoint and merged: %v", trial, s)
			}
		}
	}
}

func (s spans) covered() int64 {
	var n int64
	for _, r := range s {
		n += r.end - r.start
	}
	return n
}
