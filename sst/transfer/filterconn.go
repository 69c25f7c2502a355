package transfer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"
)

// An external filter cannot be asked to flush, so each Sync ends a segment:
// the donor closes the compressor's input, sends its output as
// [u32 length][bytes] pieces, then a zero length, and starts a fresh
// compressor; the joiner runs one decompressor per segment. Every segment
// is a complete compressed stream, whatever the filter.

const maxSegmentPiece = 1 << 20

func (s *Session) newFilter(command, desc string) (*filter, error) {
	f, err := startFilter(s.ctx, command, desc)
	if err != nil {
		return nil, err
	}
	s.filters.Add(1)
	go func() {
		<-f.waitedSignal()
		s.filters.Done()
		<-s.ctx.Done() // nobody reads or writes the pipes after the session
		f.closeFiles()
	}()
	return f, nil
}

// startSendFilter starts the compressor of a new segment on dc.
func (s *Session) startSendFilter(dc *dataConn) error {
	f, err := s.newFilter(s.opts.Compressor, "[sst] compressor")
	if err != nil {
		return err
	}
	dc.flt, dc.w, dc.copyErr = f, f.in, make(chan error, 1)
	go func() {
		buf := make([]byte, 4+64<<10)
		for {
			n, rerr := f.out.Read(buf[4:])
			if n > 0 {
				binary.LittleEndian.PutUint32(buf, uint32(n))
				if err := s.writeData(dc, buf[:4+n]); err != nil {
					dc.copyErr <- err
					return
				}
			}
			if rerr == io.EOF {
				// Only a compressor that succeeded ends its segment: the
				// joiner must not take a failed one's output, often none,
				// for a whole segment and blame its own decompressor.
				if err := f.wait(30 * time.Second); err != nil {
					dc.copyErr <- err
					return
				}
				clear(buf[:4])
				dc.copyErr <- s.writeData(dc, buf[:4])
				return
			}
			if rerr != nil {
				dc.copyErr <- fmt.Errorf("%s: read output: %w", f.desc, rerr)
				return
			}
		}
	}()
	return nil
}

func (s *Session) writeData(dc *dataConn, b []byte) error {
	if d := s.idle(); d > 0 {
		dc.conn.SetWriteDeadline(time.Now().Add(d))
	}
	if _, err := dc.conn.Write(b); err != nil {
		// The compressor's output meets a joiner that hung up: its
		// reason, on the control channel, may be just behind.
		return s.peerAccount(netErr(s.peer, fmt.Sprintf("data stream %d", dc.index), err, s.idle()))
	}
	return nil
}

// endSegment runs after a barrier or end frame: it flushes the segment
// through the filter, or half-closes the socket after the last frame.
func (s *Session) endSegment(dc *dataConn, fw *frameWriter, last bool) error {
	if dc.flt == nil {
		if last {
			if cw, ok := dc.conn.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
		}
		return nil
	}
	f := dc.flt
	s.opts.at("endSegment", s)
	f.in.Close()
	if err := <-dc.copyErr; err != nil {
		f.kill()
		f.wait(time.Second)
		return err
	}
	if err := f.wait(30 * time.Second); err != nil {
		return err
	}
	if last {
		if cw, ok := dc.conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		return nil
	}
	if err := s.startSendFilter(dc); err != nil {
		return err
	}
	fw.w = dc.w
	return nil
}

// startPump gives dc a reader of decompressed frames, fed segment by
// segment through fresh decompressors.
func (s *Session) startPump(dc *dataConn) {
	pr, pw := io.Pipe()
	src := dc.r
	dc.pr, dc.r = pr, bufio.NewReaderSize(pr, readBuf)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		pw.CloseWithError(s.pump(src, pw))
	}()
}

// pump returns nil at a clean end between segments.
func (s *Session) pump(src io.Reader, pw *io.PipeWriter) error {
	var h [4]byte
	for {
		if _, err := io.ReadFull(src, h[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		f, err := s.newFilter(s.opts.Decompressor, "[sst] decompressor")
		if err != nil {
			return err
		}
		fed := make(chan error, 1)
		first := int(binary.LittleEndian.Uint32(h[:]))
		go func() {
			err := feedSegment(src, f.in, first)
			f.in.Close()
			fed <- err
		}()
		_, cerr := io.Copy(pw, f.out)
		var ferr error
		if cerr != nil {
			f.kill()
		}
		if err := <-fed; err != nil {
			f.kill()
			ferr = err
		}
		werr := f.wait(30 * time.Second)
		switch {
		case ferr != nil && !errors.Is(ferr, syscall.EPIPE):
			return ferr // the connection broke
		case werr != nil:
			return werr // the decompressor failed: its status and stderr say why
		case ferr != nil:
			return ferr
		case cerr != nil:
			return cerr
		}
	}
}

// feedSegment copies one segment's pieces, the first of length n, into w.
func feedSegment(src io.Reader, w io.Writer, n int) error {
	var h [4]byte
	for n != 0 {
		if n > maxSegmentPiece {
			return fmt.Errorf("%w: filter segment piece of %d bytes", errCorrupt, n)
		}
		if _, err := io.CopyN(w, src, int64(n)); err != nil {
			return unexpected(err)
		}
		if _, err := io.ReadFull(src, h[:]); err != nil {
			return unexpected(err)
		}
		n = int(binary.LittleEndian.Uint32(h[:]))
	}
	return nil
}
