// Package mbstream reads and writes the mbstream (xbstream) format that
// mariadb-backup --stream=mbstream produces: a plain sequence of chunks, each
// naming a file, with no header and no trailer.
//
// Chunk layout (all integers little-endian):
//
//	magic "XBSTCK01" | flags u8 | type u8 | path_len u32 | path
//	P: len u64 | offset u64 | crc32 u32 | payload
//	S: offset u64
//	R: new_len u32 | new_path
//	E, D: nothing
package mbstream

import (
	"errors"
	"fmt"
	"strings"
)

// Magic starts every chunk.
const Magic = "XBSTCK01"

// Chunk flags.
const (
	FlagIgnorable = 0x01 // readers may skip a chunk of an unknown type
	FlagRewrite   = 0x02 // truncate an existing file instead of failing
)

// Type is a chunk's type byte.
type Type byte

// Chunk types.
const (
	TypePayload Type = 'P'
	TypeEOF     Type = 'E'
	TypeSeek    Type = 'S'
	TypeRename  Type = 'R'
	TypeRemove  Type = 'D'
)

func (t Type) String() string {
	switch t {
	case TypePayload, TypeEOF, TypeSeek, TypeRename, TypeRemove:
		return string(rune(t))
	}
	return fmt.Sprintf("0x%02x", byte(t))
}

// MaxPath is the longest path mariadb-backup's reader accepts (FN_REFLEN-1).
const MaxPath = 511

// ChunkSize is the payload size mariadb-backup buffers per file before it
// emits a P chunk; the writer uses it too.
const ChunkSize = 10 << 20

// MaxPayload bounds a single P chunk's declared length. mariadb-backup emits
// at most ChunkSize, or one bigger write; anything past this is corruption,
// not data.
const MaxPayload = 1 << 30

var (
	// ErrChecksum reports a P chunk whose payload does not match its CRC.
	ErrChecksum = errors.New("mbstream: payload checksum mismatch")
	// ErrFormat reports bytes that are not a valid chunk.
	ErrFormat = errors.New("mbstream: bad chunk")
)

// ValidPath reports why p may not be used as a path inside the target
// directory, or nil. It is stricter than mbstream -x (which rejects a
// leading '.' or '/' and "/../"): every component must be a plain name.
func ValidPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case len(p) > MaxPath:
		return fmt.Errorf("path of %d bytes, over %d", len(p), MaxPath)
	case p[0] == '/':
		return fmt.Errorf("absolute path %q", p)
	case p[0] == '.':
		return fmt.Errorf("path %q starts with '.'", p)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains NUL", p)
	}
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "":
			return fmt.Errorf("path %q has an empty component", p)
		case ".", "..":
			return fmt.Errorf("path %q has a %q component", p, c)
		}
	}
	return nil
}
