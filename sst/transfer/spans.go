package transfer

import "sort"

// spans is a set of disjoint byte ranges [start, end), sorted and merged.
// With the byte counts, it proves that a file's bytes arrived exactly once
// each: a chunk sent twice and another lost would leave the count right.
// Chunks arrive nearly in order, so the set stays a few ranges long.
type spans []span

type span struct{ start, end int64 }

// add inserts [start, end) and reports false, changing nothing, when it
// overlaps a range already in the set.
func (s *spans) add(start, end int64) bool {
	if start >= end {
		return true
	}
	r := *s
	i := sort.Search(len(r), func(i int) bool { return r[i].end > start })
	if i < len(r) && r[i].start < end {
		return false
	}
	// r[i-1].end <= start and (i == len or end <= r[i].start).
	joinLeft := i > 0 && r[i-1].end == start
	joinRight := i < len(r) && r[i].start == end
	switch {
	case joinLeft && joinRight:
		r[i-1].end = r[i].end
		*s = append(r[:i], r[i+1:]...)
	case joinLeft:
		r[i-1].end = end
	case joinRight:
		r[i].start = start
	default:
		r = append(r, span{})
		copy(r[i+1:], r[i:])
		r[i] = span{start, end}
		*s = r
	}
	return true
}
