package mbstream

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// Chunk is one chunk's header. For P chunks (and ignorable unknown types,
// which share the P layout) the payload is read from the Reader that
// returned the chunk, before the next call to Next.
type Chunk struct {
	Flags   byte
	Type    Type
	Path    string
	Length  uint64 // P: payload bytes
	Offset  uint64 // P: file offset of the payload; S: new position
	CRC     uint32 // P: CRC-32 (IEEE) of the payload
	NewPath string // R: the new name
	// Pos is the stream offset of the chunk's first byte, for errors.
	Pos int64
}

// Ignorable reports whether the chunk may be skipped when not understood.
func (c *Chunk) Ignorable() bool { return c.Flags&FlagIgnorable != 0 }

// known reports whether t is a type this package interprets.
func known(t Type) bool {
	switch t {
	case TypePayload, TypeEOF, TypeSeek, TypeRename, TypeRemove:
		return true
	}
	return false
}

// Reader reads chunks from a stream with bounded memory: payloads stream
// through Read and are never buffered whole.
type Reader struct {
	r    *bufio.Reader
	pos  int64 // stream offset of the next unread byte
	cur  *Chunk
	left uint64 // payload bytes of cur not yet read
	// pending is set while cur's payload has not been read and verified.
	pending bool
	crc     hash.Hash32
	err     error // sticky
	hdr     [22]byte
}

// NewReader returns a Reader reading from r.
func NewReader(r io.Reader) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 64<<10 {
		br = bufio.NewReaderSize(r, 256<<10)
	}
	return &Reader{r: br, crc: crc32.NewIEEE()}
}

// Offset is the number of stream bytes consumed so far.
func (r *Reader) Offset() int64 { return r.pos }

func (r *Reader) readFull(b []byte) error {
	n, err := io.ReadFull(r.r, b)
	r.pos += int64(n)
	return err
}

func (r *Reader) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	return r.err
}

// Next returns the next chunk header, after skipping (and verifying) any
// unread payload of the previous one. At the end of the stream, which must
// fall on a chunk boundary, it returns io.EOF.
func (r *Reader) Next() (*Chunk, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.pending {
		if _, err := io.Copy(io.Discard, payload{r}); err != nil {
			return nil, err
		}
	}
	r.cur = nil
	c, err := r.header()
	if err != nil {
		return nil, r.fail(err)
	}
	r.cur = c
	r.left = c.Length
	r.pending = hasPayload(c)
	r.crc.Reset()
	return c, nil
}

func hasPayload(c *Chunk) bool {
	return c.Type == TypePayload || (!known(c.Type) && c.Ignorable())
}

func (r *Reader) header() (*Chunk, error) {
	start := r.pos
	b := r.hdr[:14]
	n, err := io.ReadFull(r.r, b)
	r.pos += int64(n)
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, truncated(err, "chunk header", start, "")
	}
	if string(b[:8]) != Magic {
		return nil, fmt.Errorf("%w: no magic at offset %d (got %q)", ErrFormat, start, b[:8])
	}
	c := &Chunk{Flags: b[8], Type: Type(b[9]), Pos: start}
	if !known(c.Type) && !c.Ignorable() {
		return nil, fmt.Errorf("%w: unknown chunk type %v at offset %d", ErrFormat, c.Type, start)
	}
	plen := binary.LittleEndian.Uint32(b[10:14])
	if plen > MaxPath {
		return nil, fmt.Errorf("%w: path length %d at offset %d, over %d", ErrFormat, plen, start, MaxPath)
	}
	p := make([]byte, plen)
	if err := r.readFull(p); err != nil {
		return nil, truncated(err, "path", start, "")
	}
	c.Path = string(p)
	switch {
	case hasPayload(c):
		t := r.hdr[:20]
		if err := r.readFull(t); err != nil {
			return nil, truncated(err, "payload header", start, c.Path)
		}
		c.Length = binary.LittleEndian.Uint64(t[0:8])
		c.Offset = binary.LittleEndian.Uint64(t[8:16])
		c.CRC = binary.LittleEndian.Uint32(t[16:20])
		if c.Length > MaxPayload {
			return nil, fmt.Errorf("%w: payload of %d bytes at offset %d for %q, over %d", ErrFormat, c.Length, start, c.Path, MaxPayload)
		}
	case c.Type == TypeSeek:
		t := r.hdr[:8]
		if err := r.readFull(t); err != nil {
			return nil, truncated(err, "seek", start, c.Path)
		}
		c.Offset = binary.LittleEndian.Uint64(t)
	case c.Type == TypeRename:
		t := r.hdr[:4]
		if err := r.readFull(t); err != nil {
			return nil, truncated(err, "rename", start, c.Path)
		}
		nlen := binary.LittleEndian.Uint32(t)
		if nlen > MaxPath {
			return nil, fmt.Errorf("%w: new path length %d at offset %d, over %d", ErrFormat, nlen, start, MaxPath)
		}
		np := make([]byte, nlen)
		if err := r.readFull(np); err != nil {
			return nil, truncated(err, "new path", start, c.Path)
		}
		c.NewPath = string(np)
	}
	return c, nil
}

// truncated describes a short read inside a chunk: the stream's fault when
// it simply ended, otherwise the underlying reader's error.
func truncated(err error, what string, start int64, path string) error {
	where := ""
	if path != "" {
		where = fmt.Sprintf(" for %q", path)
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: truncated %s at offset %d%s: %v", ErrFormat, what, start, where, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("mbstream: read %s at offset %d%s: %w", what, start, where, err)
}

// Read reads the current chunk's payload. At its end it verifies the CRC and
// returns io.EOF, or an error wrapping ErrChecksum.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if !r.pending {
		return 0, io.EOF
	}
	if r.left == 0 {
		r.pending = false
		if r.crc.Sum32() != r.cur.CRC {
			return 0, r.fail(fmt.Errorf("%w: chunk at offset %d for %q (offset %d, %d bytes): want %08x, got %08x",
				ErrChecksum, r.cur.Pos, r.cur.Path, r.cur.Offset, r.cur.Length, r.cur.CRC, r.crc.Sum32()))
		}
		return 0, io.EOF
	}
	if uint64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.pos += int64(n)
	r.left -= uint64(n)
	r.crc.Write(p[:n])
	if err == io.EOF {
		if r.left > 0 {
			return n, r.fail(fmt.Errorf("%w: truncated payload at offset %d for %q: %d bytes missing: %v",
				ErrFormat, r.cur.Pos, r.cur.Path, r.left, io.ErrUnexpectedEOF))
		}
		err = nil
	}
	if err != nil {
		return n, r.fail(fmt.Errorf("mbstream: read payload for %q: %w", r.cur.Path, err))
	}
	return n, nil
}

// payload hides Reader's other methods from io.Copy.
type payload struct{ r *Reader }

func (p payload) Read(b []byte) (int, error) { return p.r.Read(b) }
