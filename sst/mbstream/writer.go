package mbstream

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// Writer writes an mbstream that mbstream -x and Extract accept. It is not
// safe for concurrent use.
type Writer struct {
	w       io.Writer
	offsets map[string]uint64 // next offset of each open file
	buf     []byte
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, offsets: make(map[string]uint64)}
}

func (w *Writer) header(flags byte, t Type, path string) []byte {
	b := append(w.buf[:0], Magic...)
	b = append(b, flags, byte(t))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(path)))
	return append(b, path...)
}

func (w *Writer) write(b []byte) error {
	w.buf = b[:0]
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("mbstream: write: %w", err)
	}
	return nil
}

func checkPath(p string) error {
	if err := ValidPath(p); err != nil {
		return fmt.Errorf("mbstream: %w", err)
	}
	return nil
}

// Payload writes data as the next P chunk of path.
func (w *Writer) Payload(path string, data []byte) error {
	if err := checkPath(path); err != nil {
		return err
	}
	off := w.offsets[path]
	b := w.header(0, TypePayload, path)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(data)))
	b = binary.LittleEndian.AppendUint64(b, off)
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(data))
	if err := w.write(b); err != nil {
		return err
	}
	if _, err := w.w.Write(data); err != nil {
		return fmt.Errorf("mbstream: write %s: %w", path, err)
	}
	w.offsets[path] = off + uint64(len(data))
	return nil
}

// Seek writes an S chunk moving path's write position to off.
func (w *Writer) Seek(path string, off uint64) error {
	if err := checkPath(path); err != nil {
		return err
	}
	b := w.header(0, TypeSeek, path)
	b = binary.LittleEndian.AppendUint64(b, off)
	if err := w.write(b); err != nil {
		return err
	}
	w.offsets[path] = off
	return nil
}

// Close writes path's E chunk. A file that was never written becomes empty.
func (w *Writer) Close(path string) error {
	if err := checkPath(path); err != nil {
		return err
	}
	if err := w.write(w.header(0, TypeEOF, path)); err != nil {
		return err
	}
	delete(w.offsets, path)
	return nil
}

// Rename writes an R chunk renaming a closed file.
func (w *Writer) Rename(path, newPath string) error {
	if err := checkPath(path); err != nil {
		return err
	}
	if err := checkPath(newPath); err != nil {
		return err
	}
	b := w.header(0, TypeRename, path)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(newPath)))
	b = append(b, newPath...)
	return w.write(b)
}

// Remove writes a D chunk removing a closed file.
func (w *Writer) Remove(path string) error {
	if err := checkPath(path); err != nil {
		return err
	}
	return w.write(w.header(0, TypeRemove, path))
}

// WriteFile writes all of r as path in chunks of ChunkSize, then closes it.
func (w *Writer) WriteFile(path string, r io.Reader) error {
	return w.WriteFileChunks(path, r, ChunkSize)
}

// WriteFileChunks is WriteFile with a given chunk size.
func (w *Writer) WriteFileChunks(path string, r io.Reader, size int) error {
	if size <= 0 {
		size = ChunkSize
	}
	buf := make([]byte, size)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if werr := w.Payload(path, buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return w.Close(path)
		}
		if err != nil {
			return fmt.Errorf("mbstream: read %s: %w", path, err)
		}
	}
}

// Bytes writes data as the whole content of path: one P chunk (none when
// empty) and the E chunk. It suits small files such as the Galera state.
func (w *Writer) Bytes(path string, data []byte) error {
	if len(data) > 0 {
		if err := w.Payload(path, data); err != nil {
			return err
		}
	}
	return w.Close(path)
}
