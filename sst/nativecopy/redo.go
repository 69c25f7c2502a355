package nativecopy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
)

// The InnoDB redo log of MariaDB 10.8 and later (ib_logfile0): a 12 KiB
// header with two checkpoint blocks, then a circular area of
// mini-transactions at LSN-addressed offsets. Recovery reads the log only
// from the checkpoint to its end, so a joiner needs only that part and the
// header; the rest of a 512 MiB log is stale. liveRedo finds that part.
// Whatever it does not recognise (another format, an encrypted log, an
// ambiguous scan) is an error, and the caller sends the whole file.
const (
	redoFormat10_8  = 0x50687973 // "Phys"
	redoStart       = 12288      // the circular area
	redoCheckpoint1 = 4096
	redoCheckpoint2 = 8192
	redoHeaderCRC   = 508 // CRC-32C of the header's first 508 bytes
	redoFileCP      = 0xf0
	redoWindow      = 1 << 20  // read at a time
	redoWindowMax   = 16 << 20 // a longer mini-transaction is not scanned
	redoUnit        = 64 << 10 // what a live part is widened to
)

// redoLive is the part of a redo log that recovery reads.
type redoLive struct {
	Checkpoint uint64 // LSN recovery starts from
	End        uint64 // LSN of the end of the log
	// Clean: the end is the server's end marker (a 0 or 1 byte where the
	// next mini-transaction would start) or a block boundary. Anything else
	// means a write in progress, or a mini-transaction this scan got wrong.
	Clean bool
	// Ranges of the file to copy, the header first, in file order; a joiner
	// whose copy holds these bytes and zeros elsewhere recovers the same.
	Ranges []transfer.Range
}

var errNotRedo = errors.New("not a MariaDB 10.8+ redo log")

// liveRedo scans the redo log f of size bytes.
func liveRedo(f io.ReaderAt, size int64) (redoLive, error) {
	var live redoLive
	if size < redoStart+16 {
		return live, fmt.Errorf("%w: %d bytes", errNotRedo, size)
	}
	hdr := make([]byte, redoStart)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return live, fmt.Errorf("read header: %w", err)
	}
	if binary.BigEndian.Uint32(hdr) != redoFormat10_8 || binary.BigEndian.Uint32(hdr[4:]) != 0 {
		return live, fmt.Errorf("%w: format %#x", errNotRedo, binary.BigEndian.Uint32(hdr))
	}
	if crc32.Checksum(hdr[:redoHeaderCRC], castagnoli) != binary.BigEndian.Uint32(hdr[redoHeaderCRC:]) {
		return live, fmt.Errorf("%w: header checksum mismatch", errNotRedo)
	}
	if binary.BigEndian.Uint32(hdr[48:]) != 0 {
		// An encrypted log adds a nonce to each mini-transaction and
		// encrypts its records; not worth the risk of a wrong end.
		return live, errors.New("encrypted redo log")
	}
	first := binary.BigEndian.Uint64(hdr[8:])
	if first < redoStart {
		return live, fmt.Errorf("%w: first LSN %d", errNotRedo, first)
	}
	// The newer valid checkpoint wins; the second block on a tie.
	var cp, cpEnd uint64
	found := false
	for _, off := range []int{redoCheckpoint1, redoCheckpoint2} {
		b := hdr[off : off+64]
		c, e := binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
		if c < first || e < c || !allZero(b[16:60]) ||
			crc32.Checksum(b[:60], castagnoli) != binary.BigEndian.Uint32(b[60:]) {
			continue
		}
		if !found || c >= cp {
			cp, cpEnd, found = c, e, true
		}
	}
	if !found {
		return live, errors.New("redo log has no valid checkpoint")
	}
	r := ring{f: f, first: first, capacity: uint64(size) - redoStart}
	end, after, sawFileCP, err := r.scan(cp, cpEnd)
	if err != nil {
		return live, err
	}
	if !sawFileCP {
		// Recovery would refuse this log; the scan must have ended early.
		var at [32]byte
		f.ReadAt(at[:], r.offset(cpEnd)) // for the report: what stands at cpEnd
		return live, fmt.Errorf("no FILE_CHECKPOINT for LSN %d at LSN %d or later (%d mini-transactions there, starting % x; scan ended at %d)", cp, cpEnd, after, at, end)
	}
	live.Checkpoint, live.End = cp, end
	if off := r.offset(end); off%512 == 0 {
		live.Clean = true
	} else {
		var c [1]byte
		if _, err := f.ReadAt(c[:], off); err == nil && c[0] <= 1 {
			live.Clean = true
		}
	}
	live.Ranges = append([]transfer.Range{{Off: 0, Len: redoStart}}, r.fileRanges(cp, end)...)
	return live, nil
}

// rounded returns the ranges widened to whole units (within size) and
// merged: whole blocks suit direct I/O and the block hashes alike.
func (l redoLive) rounded(size, unit int64) []transfer.Range {
	var out []transfer.Range
	for _, r := range l.Ranges {
		lo := r.Off / unit * unit
		hi := min(size, (r.Off+r.Len+unit-1)/unit*unit)
		if k := len(out); k > 0 && lo <= out[k-1].Off+out[k-1].Len {
			out[k-1].Len = max(out[k-1].Len, hi-out[k-1].Off)
			continue
		}
		out = append(out, transfer.Range{Off: lo, Len: hi - lo})
	}
	return out
}

// ring reads the circular area by LSN.
type ring struct {
	f        io.ReaderAt
	first    uint64
	capacity uint64
	buf      []byte
	base     uint64 // LSN of buf[0]
}

func (r *ring) offset(lsn uint64) int64 {
	return redoStart + int64((lsn-r.first)%r.capacity)
}

// seqBit is the end-of-mini-transaction byte expected at lsn: it flips on
// each pass through the file, so stale data from the last pass fails it.
func (r *ring) seqBit(lsn uint64) byte {
	if ((lsn-r.first)/r.capacity)&1 == 0 {
		return 1
	}
	return 0
}

// load fills the window (at most the capacity) from lsn; grow doubles it.
func (r *ring) load(lsn uint64, grow bool) error {
	n := min(uint64(redoWindow), r.capacity)
	if grow {
		n = min(2*uint64(len(r.buf)), r.capacity)
	}
	if uint64(len(r.buf)) < n {
		r.buf = make([]byte, n)
	}
	n = uint64(len(r.buf))
	r.base = lsn
	for done := uint64(0); done < n; {
		off := r.offset(lsn + done)
		m := min(n-done, uint64(redoStart)+r.capacity-uint64(off))
		if _, err := r.f.ReadAt(r.buf[done:done+m], off); err != nil {
			return fmt.Errorf("read redo log at %d: %w", off, err)
		}
		done += m
	}
	return nil
}

// errLapped: the scan read a whole log's worth from the checkpoint without
// reaching the end, so the server, writing faster than the scan reads, has
// overwritten where it started. Only an unlocked scan can meet it.
var errLapped = errors.New("redo log scan did not end within the file (the server wrote faster than the scan read)")

// scan walks the mini-transactions from lsn to the end of the log, as
// recovery does, and returns that end, how many it saw from cpEnd on, and
// whether the FILE_CHECKPOINT(cp) record that recovery requires is among
// those.
func (r *ring) scan(lsn, cpEnd uint64) (end uint64, after int, sawFileCP bool, err error) {
	start, cp := lsn, lsn
	if err := r.load(lsn, false); err != nil {
		return 0, 0, false, err
	}
	for {
		if lsn-start >= r.capacity {
			return 0, 0, false, errLapped
		}
		i, n, ok, err := r.mtr(lsn)
		if err != nil {
			return 0, 0, false, err
		}
		if !ok {
			return lsn, after, sawFileCP, nil
		}
		if lsn >= cpEnd {
			after++
			if !sawFileCP {
				sawFileCP = hasFileCP(r.buf[i:i+n-5], cp)
			}
		}
		lsn += uint64(n)
	}
}

// mtr checks the mini-transaction at lsn and returns where it starts in
// r.buf and its length, or ok false where recovery sees the end of the log.
func (r *ring) mtr(lsn uint64) (i, n int, ok bool, err error) {
	for {
		i = int(lsn - r.base)
		if i >= len(r.buf) {
			if err := r.load(lsn, false); err != nil {
				return 0, 0, false, err
			}
			continue
		}
		b := r.buf
		if b[i] <= 1 {
			return i, 0, false, nil
		}
		j := i
		for j < len(b) && b[j] > 1 {
			l, good := recordLen(b[j:])
			if !good {
				return i, 0, false, nil // malformed length: recovery stops here too
			}
			j += l
		}
		if j+5 > len(b) {
			if i > 0 {
				// Straddles the window: read again from its start.
				if err := r.load(lsn, false); err != nil {
					return 0, 0, false, err
				}
				continue
			}
			if uint64(len(b)) >= r.capacity {
				return i, 0, false, nil // longer than the log: not a real one
			}
			if len(b) >= redoWindowMax {
				return 0, 0, false, fmt.Errorf("mini-transaction at LSN %d longer than %d bytes", lsn, len(b))
			}
			if err := r.load(lsn, true); err != nil {
				return 0, 0, false, err
			}
			continue
		}
		if b[j] != r.seqBit(lsn+uint64(j-i)) {
			return i, 0, false, nil
		}
		if crc32.Checksum(b[i:j], castagnoli) != binary.BigEndian.Uint32(b[j+1:]) {
			return i, 0, false, nil
		}
		return i, j + 5 - i, true, nil
	}
}

// hasFileCP says whether the records of a mini-transaction include
// FILE_CHECKPOINT(cp): the checkpoint writes it last, after a FILE_MODIFY
// for each tablespace changed since the previous one.
func hasFileCP(recs []byte, cp uint64) bool {
	for len(recs) > 0 {
		n, ok := recordLen(recs)
		if !ok || n > len(recs) {
			return false
		}
		if n == 11 && recs[0] == redoFileCP|10 && recs[1] == 0 && recs[2] == 0 &&
			binary.BigEndian.Uint64(recs[3:]) == cp {
			return true
		}
		recs = recs[n:]
	}
	return false
}

// recordLen is the length of the log record starting at b[0]: the low
// nibble of its first byte counts the bytes that follow, or, when zero, a
// variable-length number that follows does (plus 15).
func recordLen(b []byte) (int, bool) {
	if n := int(b[0] & 15); n != 0 {
		return 1 + n, true
	}
	if len(b) < 2 {
		return len(b) + 1, true // past the window; the caller reloads
	}
	v, ok := decodeVarint(b[1:])
	if !ok {
		return 0, false
	}
	return 1 + 15 + int(v), true
}

// decodeVarint decodes InnoDB's mlog varint: 1 to 5 bytes, the leading
// bits of the first byte giving the length; each longer form starts where
// the shorter one ends.
func decodeVarint(b []byte) (uint32, bool) {
	c := b[0]
	need := 1
	switch {
	case c < 0x80:
		return uint32(c), true
	case c < 0xc0:
		need = 2
	case c < 0xe0:
		need = 3
	case c < 0xf0:
		need = 4
	case c < 0xf8:
		need = 5
	default:
		return 0, false
	}
	if len(b) < need {
		return 1 << 30, true // past the window; the caller reloads
	}
	const min2, min3, min4, min5 = 0x80, 0x80 + 1<<14, 0x80 + 1<<14 + 1<<21, 0x80 + 1<<14 + 1<<21 + 1<<28
	switch need {
	case 2:
		return min2 + (uint32(c&0x3f)<<8 | uint32(b[1])), true
	case 3:
		return min3 + (uint32(c&0x1f)<<16 | uint32(b[1])<<8 | uint32(b[2])), true
	case 4:
		return min4 + (uint32(c&0x0f)<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])), true
	default:
		v := uint64(c&0x07)<<32 | uint64(b[1])<<24 | uint64(b[2])<<16 | uint64(b[3])<<8 | uint64(b[4])
		if v+min5 > 1<<31 {
			return 0, false
		}
		return uint32(v + min5), true
	}
}

// fileRanges maps the LSNs [from, to) to file ranges, in file order.
func (r *ring) fileRanges(from, to uint64) []transfer.Range {
	if to <= from {
		return nil
	}
	a, n := r.offset(from), int64(to-from)
	room := int64(redoStart+r.capacity) - a
	if n <= room {
		return []transfer.Range{{Off: a, Len: n}}
	}
	return []transfer.Range{{Off: redoStart, Len: n - room}, {Off: a, Len: room}}
}

func rangeBytes(rs []transfer.Range) int64 {
	var n int64
	for _, r := range rs {
		n += r.Len
	}
	return n
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
