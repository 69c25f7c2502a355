package transfer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/pierrec/lz4/v4"
)

// Frame kinds on data connections.
const (
	kindChunk     = 1 // file data: id = file id, off = offset, name = path, mode; flagEOF ends a whole file at off+len
	kindFileEnd   = 2 // patched file: id, off = final size, name, mode; payload = 8 bytes, the byte count sent
	kindDir       = 3 // name, mode
	kindSymlink   = 4 // name; payload = target
	kindStream    = 5 // raw stream data: id = stream id, off = sequence number
	kindStreamEnd = 6 // id, off = number of data frames; payload = 8 bytes, total bytes
	kindBarrier   = 7 // id = barrier number, off = files queued so far
	kindEnd       = 8 // no more data on this connection; id = barrier number, off = files queued
	kindPing      = 9 // keeps an idle connection's deadline alive
	kindMax       = 9
)

// Frame flags.
const (
	flagLZ4   = 1 // payload is an lz4 block of rawLen bytes
	flagWhole = 2 // chunk of a whole-file transfer (the file is truncated first)
	flagEOF   = 4 // last chunk of a whole file
	flagCache = 8 // chunk of a file to keep in the page cache (no direct I/O)
)

const (
	headerSize = 40
	maxName    = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frame is a decoded header; payload and name live in the caller's buffers.
type frame struct {
	kind, flags byte
	nameLen     int
	wireLen     int // payload bytes on the wire
	id, off     uint64
	rawLen      int
	crc         uint32 // CRC32C of the raw payload
	mode        uint32
}

func kindName(k byte) string {
	switch k {
	case kindChunk:
		return "chunk"
	case kindFileEnd:
		return "file end"
	case kindDir:
		return "directory"
	case kindSymlink:
		return "symlink"
	case kindStream:
		return "stream data"
	case kindStreamEnd:
		return "stream end"
	case kindBarrier:
		return "barrier"
	case kindEnd:
		return "end"
	case kindPing:
		return "ping"
	}
	return fmt.Sprintf("kind %d", k)
}

// putHeader encodes f and name into h (headerSize bytes) with the header
// checksum over both.
func putHeader(h []byte, f *frame, name string) {
	h[0], h[1] = f.kind, f.flags
	binary.LittleEndian.PutUint16(h[2:], uint16(len(name)))
	binary.LittleEndian.PutUint32(h[4:], uint32(f.wireLen))
	binary.LittleEndian.PutUint64(h[8:], f.id)
	binary.LittleEndian.PutUint64(h[16:], f.off)
	binary.LittleEndian.PutUint32(h[24:], uint32(f.rawLen))
	binary.LittleEndian.PutUint32(h[28:], f.crc)
	binary.LittleEndian.PutUint32(h[32:], f.mode)
	c := crc32.Update(0, castagnoli, h[:36])
	c = crcString(c, name)
	binary.LittleEndian.PutUint32(h[36:], c)
}

func crcString(c uint32, s string) uint32 {
	var b [256]byte
	for len(s) > 0 {
		n := copy(b[:], s)
		c = crc32.Update(c, castagnoli, b[:n])
		s = s[n:]
	}
	return c
}

// errCorrupt marks a frame that fails its checks.
var errCorrupt = errors.New("corrupt frame")

// frameReader decodes frames from one connection into reused buffers.
type frameReader struct {
	r        io.Reader
	maxChunk int
	hdr      [headerSize]byte
	name     []byte
	wire     []byte // compressed payload scratch
	frames   int64
	wireIn   int64
}

// next reads one header and its name. It checks everything the header
// alone can tell, so a corrupt length never drives an allocation.
func (fr *frameReader) next() (frame, string, error) {
	var f frame
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return f, "", err
	}
	h := fr.hdr[:]
	f.kind, f.flags = h[0], h[1]
	f.nameLen = int(binary.LittleEndian.Uint16(h[2:]))
	f.wireLen = int(binary.LittleEndian.Uint32(h[4:]))
	f.id = binary.LittleEndian.Uint64(h[8:])
	f.off = binary.LittleEndian.Uint64(h[16:])
	f.rawLen = int(binary.LittleEndian.Uint32(h[24:]))
	f.crc = binary.LittleEndian.Uint32(h[28:])
	f.mode = binary.LittleEndian.Uint32(h[32:])
	if f.kind == 0 || f.kind > kindMax {
		return f, "", fmt.Errorf("%w: unknown kind %d", errCorrupt, f.kind)
	}
	if f.nameLen > maxName {
		return f, "", fmt.Errorf("%w: name of %d bytes", errCorrupt, f.nameLen)
	}
	if f.rawLen > fr.maxChunk || f.wireLen > lz4.CompressBlockBound(fr.maxChunk) {
		return f, "", fmt.Errorf("%w: payload of %d bytes (%d on the wire) exceeds the chunk size %d", errCorrupt, f.rawLen, f.wireLen, fr.maxChunk)
	}
	if f.flags&flagLZ4 == 0 && f.wireLen != f.rawLen {
		return f, "", fmt.Errorf("%w: payload length %d != %d", errCorrupt, f.wireLen, f.rawLen)
	}
	if cap(fr.name) < f.nameLen {
		fr.name = make([]byte, maxName)
	}
	name := fr.name[:f.nameLen]
	if _, err := io.ReadFull(fr.r, name); err != nil {
		return f, "", unexpected(err)
	}
	c := crc32.Update(0, castagnoli, h[:36])
	c = crc32.Update(c, castagnoli, name)
	if c != binary.LittleEndian.Uint32(h[36:]) {
		return f, "", fmt.Errorf("%w: header checksum mismatch", errCorrupt)
	}
	fr.frames++
	fr.wireIn += int64(headerSize + f.nameLen + f.wireLen)
	return f, string(name), nil
}

// payload reads f's payload into dst (len >= f.rawLen), decompressing as
// needed, and verifies its checksum.
func (fr *frameReader) payload(f *frame, dst []byte) ([]byte, error) {
	out := dst[:f.rawLen]
	if f.flags&flagLZ4 == 0 {
		if _, err := io.ReadFull(fr.r, out); err != nil {
			return nil, unexpected(err)
		}
	} else {
		if cap(fr.wire) < f.wireLen {
			fr.wire = make([]byte, lz4.CompressBlockBound(fr.maxChunk))
		}
		w := fr.wire[:f.wireLen]
		if _, err := io.ReadFull(fr.r, w); err != nil {
			return nil, unexpected(err)
		}
		n, err := lz4.UncompressBlock(w, out)
		if err != nil || n != f.rawLen {
			return nil, fmt.Errorf("%w: lz4 block does not decompress to %d bytes", errCorrupt, f.rawLen)
		}
	}
	if crc32.Checksum(out, castagnoli) != f.crc {
		return nil, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	return out, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// frameWriter encodes frames onto one connection.
type frameWriter struct {
	w      io.Writer
	hdr    []byte // headerSize + maxName
	comp   lz4.Compressor
	zbuf   []byte
	lz4    bool
	wrote  int64
	before func(n int) error // called with the frame's size before writing: rate limit, deadline
}

// write sends a frame; raw is the uncompressed payload. It returns the
// bytes written.
func (fw *frameWriter) write(f *frame, name string, raw []byte) (int, error) {
	f.rawLen = len(raw)
	f.crc = crc32.Checksum(raw, castagnoli)
	payload := raw
	f.flags &^= flagLZ4
	if fw.lz4 && len(raw) >= 512 {
		if bound := lz4.CompressBlockBound(len(raw)); cap(fw.zbuf) < bound {
			fw.zbuf = make([]byte, bound)
		}
		n, err := fw.comp.CompressBlock(raw, fw.zbuf[:cap(fw.zbuf)])
		if err == nil && n > 0 && n < len(raw) {
			payload = fw.zbuf[:n]
			f.flags |= flagLZ4
		}
	}
	f.wireLen = len(payload)
	h := fw.hdr[:headerSize+len(name)]
	putHeader(h, f, name)
	copy(h[headerSize:], name)
	total := len(h) + len(payload)
	// Small payloads ride in the header's buffer: one write, one segment.
	if len(payload) <= cap(fw.hdr)-len(h) && len(payload) <= 4096 {
		h = append(h, payload...)
		payload = nil
	}
	if fw.before != nil {
		if err := fw.before(total); err != nil {
			return 0, err
		}
	}
	if _, err := fw.w.Write(h); err != nil {
		return 0, err
	}
	if len(payload) > 0 {
		if _, err := fw.w.Write(payload); err != nil {
			return 0, err
		}
	}
	fw.wrote += int64(total)
	return total, nil
}
