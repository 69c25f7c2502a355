package nativecopy

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
)

// redoWriter builds a 10.8-format redo log the way the server writes one:
// header, checkpoint block, mini-transactions around the ring.
type redoWriter struct {
	b     []byte
	first uint64
	lsn   uint64
}

func newRedo(size int, first uint64) *redoWriter {
	w := &redoWriter{b: make([]byte, size), first: first, lsn: first}
	binary.BigEndian.PutUint32(w.b, redoFormat10_8)
	binary.BigEndian.PutUint64(w.b[8:], first)
	copy(w.b[16:], "MariaDB 10.11.6")
	binary.BigEndian.PutUint32(w.b[redoHeaderCRC:], crc32.Checksum(w.b[:redoHeaderCRC], castagnoli))
	return w
}

func (w *redoWriter) ring() *ring {
	return &ring{first: w.first, capacity: uint64(len(w.b)) - redoStart}
}

func (w *redoWriter) put(lsn uint64, p []byte) {
	r := w.ring()
	for k, c := range p {
		w.b[r.offset(lsn+uint64(k))] = c
	}
}

// mtr appends one mini-transaction of records and returns its start LSN.
func (w *redoWriter) mtr(recs ...[]byte) uint64 {
	start := w.lsn
	body := bytes.Join(recs, nil)
	crc := crc32.Checksum(body, castagnoli)
	tail := make([]byte, 5)
	tail[0] = w.ring().seqBit(start + uint64(len(body)))
	binary.BigEndian.PutUint32(tail[1:], crc)
	// As the server does, a 0 follows: the end marker until the next one.
	w.put(start, append(append(body, tail...), 0))
	w.lsn += uint64(len(body) + 5)
	return start
}

// record makes a record of type typ with n bytes after its first byte.
func record(typ byte, n int, rnd *rand.Rand) []byte {
	var hdr []byte
	if n <= 15 {
		hdr = []byte{typ | byte(n)}
	} else {
		v := uint32(n - 15)
		hdr = append([]byte{typ}, encodeVarint(v)...)
	}
	p := make([]byte, 1+n)
	copy(p, hdr)
	for k := len(hdr); k < len(p); k++ {
		p[k] = byte(rnd.Uint32())
	}
	return p
}

// encodeVarint is the inverse of decodeVarint, for the tests.
func encodeVarint(v uint32) []byte {
	switch {
	case v < 0x80:
		return []byte{byte(v)}
	case v < 0x80+1<<14:
		v -= 0x80
		return []byte{0x80 | byte(v>>8), byte(v)}
	case v < 0x80+1<<14+1<<21:
		v -= 0x80 + 1<<14
		return []byte{0xc0 | byte(v>>16), byte(v >> 8), byte(v)}
	default:
		v -= 0x80 + 1<<14 + 1<<21
		return []byte{0xe0 | byte(v>>24), byte(v >> 16), byte(v >> 8), byte(v)}
	}
}

// checkpoint writes FILE_CHECKPOINT(lsn) as an mtr and the checkpoint
// block that points at it.
func (w *redoWriter) checkpoint(block int) (cp uint64) {
	cp = w.lsn
	rec := make([]byte, 11)
	rec[0] = redoFileCP | 10
	binary.BigEndian.PutUint64(rec[3:], cp)
	// FILE_MODIFY(space 5, "./db/t.ibd") first, as the server writes it.
	modify := append([]byte{0xb0 | 12, 5, 0}, "./db/t.ibd"...)
	end := w.mtr(modify, rec)
	b := w.b[block : block+64]
	clear(b)
	binary.BigEndian.PutUint64(b, cp)
	binary.BigEndian.PutUint64(b[8:], end)
	binary.BigEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return cp
}

func (w *redoWriter) load(rnd *rand.Rand, n int) {
	for k := 0; k < n; k++ {
		var recs [][]byte
		for m := 1 + rnd.IntN(4); m > 0; m-- {
			size := 1 + rnd.IntN(15)
			switch rnd.IntN(5) {
			case 0:
				size = 16 + rnd.IntN(300)
			case 1:
				size = 0x80 + 15 + rnd.IntN(20000)
			}
			if rnd.IntN(200) == 0 {
				size = 0x80 + 1<<14 + 15 + rnd.IntN(50000) // three-byte length
			}
			recs = append(recs, record(byte(0x10*(1+rnd.IntN(6))), size, rnd))
		}
		w.mtr(recs...)
	}
}

func TestRecordLen(t *testing.T) {
	for _, v := range []uint32{0, 1, 0x7f, 0x80, 0x81, 0x80 + 1<<14 - 1, 0x80 + 1<<14, 0x80 + 1<<14 + 1<<21 - 1, 0x80 + 1<<14 + 1<<21, 1 << 27} {
		enc := encodeVarint(v)
		got, ok := decodeVarint(enc)
		if !ok || got != v {
			t.Errorf("decodeVarint(% x) = %d, %v; want %d", enc, got, ok, v)
		}
		rec := append([]byte{0x30}, enc...)
		if n, ok := recordLen(rec); !ok || n != 1+15+int(v) {
			t.Errorf("recordLen(% x) = %d, %v; want %d", rec, n, ok, 1+15+int(v))
		}
	}
	if n, ok := recordLen([]byte{0x37}); !ok || n != 8 {
		t.Errorf("recordLen(37) = %d, %v; want 8", n, ok)
	}
	if _, ok := decodeVarint([]byte{0xf8, 0, 0, 0, 0}); ok {
		t.Error("decodeVarint(f8 ...) accepted")
	}
}

func TestLiveRedo(t *testing.T) {
	const size = redoStart + 4<<20
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name     string
		before   int // mtrs before the checkpoint: enough wraps the ring
		after    int
		block    int
		wantWrap bool // the live part crosses the ring's end
		long     bool // a mini-transaction longer than the scan's window
	}{
		{"fresh", 0, 50, redoCheckpoint1, false, false},
		{"wrapped", 700, 200, redoCheckpoint2, false, false},
		{"live part wraps", 1000, 400, redoCheckpoint1, true, false},
		{"clean shutdown", 900, 0, redoCheckpoint2, false, false},
		{"long mini-transaction", 300, 10, redoCheckpoint1, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newRedo(size, 0x3000+uint64(rnd.IntN(1<<20)))
			w.load(rnd, tc.before)
			// Land the checkpoint near the ring's end so that the live part
			// wraps, when the case wants that.
			if tc.wantWrap {
				r := w.ring()
				for uint64(r.offset(w.lsn)) < size-300<<10 {
					w.load(rnd, 1)
				}
			}
			cp := w.checkpoint(tc.block)
			w.load(rnd, tc.after)
			if tc.long {
				var recs [][]byte
				for k := 0; k < 15; k++ {
					recs = append(recs, record(0x30, 200000, rnd))
				}
				w.mtr(recs...) // 3 MB: the scan's window must grow
				w.load(rnd, 3)
			}
			end := w.lsn
			live, err := liveRedo(bytes.NewReader(w.b), size)
			if err != nil {
				t.Fatal(err)
			}
			if live.Checkpoint != cp || live.End != end || !live.Clean {
				t.Fatalf("live %d..%d (clean %v), want %d..%d (clean)", live.Checkpoint, live.End, live.Clean, cp, end)
			}
			if tc.wantWrap && len(live.Ranges) != 3 {
				t.Errorf("ranges %v: want the header and two pieces", live.Ranges)
			}
			// A copy with only these ranges scans the same.
			c := sparseCopy(w.b, live.Ranges)
			again, err := liveRedo(bytes.NewReader(c), size)
			if err != nil || again.End != end {
				t.Errorf("sparse copy: end %d, %v; want %d", again.End, err, end)
			}
		})
	}
}

func sparseCopy(b []byte, ranges []transfer.Range) []byte {
	c := make([]byte, len(b))
	for _, r := range ranges {
		copy(c[r.Off:r.Off+r.Len], b[r.Off:r.Off+r.Len])
	}
	return c
}

// What is not a plain 10.8 log, or does not hold together, is refused,
// so that the donor sends the whole file.
func TestLiveRedoRefuses(t *testing.T) {
	const size = redoStart + 1<<20
	rnd := rand.New(rand.NewPCG(3, 4))
	good := func() *redoWriter {
		w := newRedo(size, 0x3000)
		w.load(rnd, 20)
		w.checkpoint(redoCheckpoint1)
		w.load(rnd, 20)
		return w
	}
	rehash := func(w *redoWriter) {
		binary.BigEndian.PutUint32(w.b[redoHeaderCRC:], crc32.Checksum(w.b[:redoHeaderCRC], castagnoli))
	}
	for _, tc := range []struct {
		name, want string
		spoil      func(w *redoWriter)
	}{
		{"old format", "format", func(w *redoWriter) { binary.BigEndian.PutUint32(w.b, 1); rehash(w) }},
		{"bad header checksum", "checksum", func(w *redoWriter) { w.b[20] ^= 1 }},
		{"encrypted", "encrypted", func(w *redoWriter) { binary.BigEndian.PutUint32(w.b[48:], 1); rehash(w) }},
		{"no checkpoint", "no valid checkpoint", func(w *redoWriter) { w.b[redoCheckpoint1+3] ^= 1 }},
		{"FILE_CHECKPOINT lost", "no FILE_CHECKPOINT", func(w *redoWriter) {
			// The block points at a FILE_CHECKPOINT for another LSN.
			rec := make([]byte, 11)
			rec[0] = redoFileCP | 10
			binary.BigEndian.PutUint64(rec[3:], w.lsn+1)
			end := w.mtr(rec)
			b := w.b[redoCheckpoint1 : redoCheckpoint1+64]
			binary.BigEndian.PutUint64(b, end)
			binary.BigEndian.PutUint64(b[8:], end)
			binary.BigEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
		}},
		{"too short", "bytes", func(w *redoWriter) { w.b = w.b[:redoStart] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := good()
			tc.spoil(w)
			_, err := liveRedo(bytes.NewReader(w.b), int64(len(w.b)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one saying %q", err, tc.want)
			}
		})
	}
	// A torn last mini-transaction ends the log before it.
	w := good()
	before := w.lsn
	w.load(rnd, 1)
	w.b[w.ring().offset(w.lsn-2)] ^= 0xff // its CRC
	live, err := liveRedo(bytes.NewReader(w.b), size)
	if err != nil || live.End != before || live.Clean {
		t.Errorf("torn tail: end %d (clean %v), %v; want %d, not clean", live.End, live.Clean, err, before)
	}
}

// FuzzLiveRedo fuzzes the circular area and the checkpoint's LSNs; the
// header around them is made valid, so that the scan is what runs.
func FuzzLiveRedo(f *testing.F) {
	rnd := rand.New(rand.NewPCG(5, 6))
	w := newRedo(redoStart+2<<10, 0x3000)
	for w.lsn < 0x3000+1<<10 {
		w.mtr(record(0x30, rnd.IntN(40), rnd))
	}
	w.checkpoint(redoCheckpoint2)
	w.mtr(record(0x20, 200, rnd), record(0x10, 3, rnd))
	cpBlock := w.b[redoCheckpoint2:]
	f.Add(w.b[redoStart:], uint32(0), binary.BigEndian.Uint32(cpBlock[4:]), binary.BigEndian.Uint32(cpBlock[12:]))
	f.Fuzz(func(t *testing.T, area []byte, firstLow, cpLow, endLow uint32) {
		if len(area) < 16 || len(area) > 1<<16 {
			return
		}
		w := newRedo(redoStart+len(area), 0x3000+uint64(firstLow%(1<<20)))
		copy(w.b[redoStart:], area)
		b := w.b[redoCheckpoint1 : redoCheckpoint1+64]
		binary.BigEndian.PutUint64(b, uint64(cpLow))
		binary.BigEndian.PutUint64(b[8:], uint64(endLow))
		binary.BigEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
		live, err := liveRedo(bytes.NewReader(w.b), int64(len(w.b)))
		if err != nil {
			return
		}
		if live.End < live.Checkpoint || live.End-live.Checkpoint > uint64(len(area)) {
			t.Fatalf("live %d..%d in a %d-byte ring", live.Checkpoint, live.End, len(area))
		}
		var n int64
		for _, r := range live.Ranges {
			if r.Off < 0 || r.Len < 0 || r.Off+r.Len > int64(len(w.b)) {
				t.Fatalf("range %+v outside %d bytes", r, len(w.b))
			}
			n += r.Len
		}
		if n != redoStart+int64(live.End-live.Checkpoint) {
			t.Fatalf("ranges %v hold %d bytes, want the header and %d", live.Ranges, n, live.End-live.Checkpoint)
		}
	})
}
