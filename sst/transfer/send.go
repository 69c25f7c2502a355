package transfer

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// job is one frame for a donor worker to send.
type job struct {
	kind   byte
	flags  byte
	name   string
	mode   uint32
	id     uint64
	off    int64
	n      int
	file   *sendFile // chunk: the file to read from
	buf    *[]byte   // stream data: the filled buffer, returned to the pool once sent
	extra  uint64    // file end: bytes sent; stream end: total bytes
	target string    // symlink
	done   chan error
}

// sendFile is a file shared by the chunk jobs reading it; the last one
// closes it.
type sendFile struct {
	f    *os.File
	r    *directReader
	name string
	left atomic.Int64
}

func (sf *sendFile) release(n int64) {
	if sf.left.Add(-n) == 0 {
		sf.r.Close()
	}
}

// Dial connects a donor to the joiner at addr, proving knowledge of secret.
// opts.Role is set to Donor.
func Dial(ctx context.Context, addr Address, secret string, opts Options) (*Session, error) {
	opts.Role = Donor
	if addr.Port == 0 {
		return nil, fmt.Errorf("dial joiner %s: no port", addr)
	}
	tcfg, err := opts.TLS.config(Donor, addr.Host)
	if err != nil {
		return nil, err
	}
	opts.logIgnored()
	n, chunk := opts.streams(), opts.chunkSize()
	if opts.RateLimit > 0 {
		// Keep each frame to a fraction of a second of the budget, so the
		// limit is smooth and idle deadlines never see a silent stream.
		chunk = min(chunk, max(int(opts.RateLimit/int64(4*n)), 16<<10))
	}
	codec, flt := "", ""
	switch {
	case opts.Compressor == "":
	case isLZ4(opts.Compressor):
		codec = "lz4"
	default:
		codec, flt = "filter", opts.Compressor
	}
	id := nonce()
	s := newSession(opts, "joiner "+addr.HostPort(), id, chunk, codec)
	s.limiter = newLimiter(opts.RateLimit)
	h := donorHello{Session: id, Conn: "control", Streams: n, Chunk: chunk, Codec: codec, Filter: flt}
	c, _, err := dialOne(ctx, &opts, addr, tcfg, secret, h)
	if err != nil {
		return nil, err
	}
	s.ctrl, s.ctrlR = c, bufio.NewReader(c)
	s.data = make([]*dataConn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := h
			h.Conn, h.Index = "data", i
			c, raw, err := dialOne(ctx, &opts, addr, tcfg, secret, h)
			if err != nil {
				errs[i] = err
				return
			}
			s.data[i] = &dataConn{index: i, conn: c, raw: raw, w: c, private: make(chan job, 1)}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.ctrl.Close()
		for _, dc := range s.data {
			if dc != nil {
				dc.conn.Close()
			}
		}
		return nil, errors.Join(errs...)
	}
	if codec == "filter" {
		for _, dc := range s.data {
			if err := s.startSendFilter(dc); err != nil {
				s.fail(err)
				s.Close()
				return nil, err
			}
		}
	}
	s.jobs = make(chan job, 2*n)
	s.logSession()
	s.start()
	for _, dc := range s.data {
		s.wg.Add(1)
		s.workers.Add(1)
		go s.worker(dc)
	}
	return s, nil
}

func (s *Session) enqueue(ctx context.Context, j job) error {
	if err := s.failed(); err != nil {
		return err
	}
	if s.finished.Load() {
		return fmt.Errorf("send to %s after Finish", s.peer)
	}
	s.pending.add(1)
	select {
	case s.jobs <- j:
		return nil
	case <-s.dead:
		s.pending.add(-1)
		return s.err
	case <-ctx.Done():
		s.pending.add(-1)
		return ctx.Err()
	}
}

func (s *Session) donorOnly(what string) error {
	if s.role != Donor {
		return fmt.Errorf("%s: only the donor sends", what)
	}
	return nil
}

// SendDir makes the joiner create directory name (slash-separated, relative
// to the joiner's root) with mode's permission bits.
func (s *Session) SendDir(ctx context.Context, name string, mode fs.FileMode) error {
	if err := s.donorOnly("SendDir"); err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return fmt.Errorf("send directory: %w", err)
	}
	return s.enqueue(ctx, job{kind: kindDir, name: name, mode: uint32(mode.Perm())})
}

// SendSymlink makes the joiner create a symlink name pointing at target.
// The joiner refuses it unless its Sink allows symlinks.
func (s *Session) SendSymlink(ctx context.Context, name, target string) error {
	if err := s.donorOnly("SendSymlink"); err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return fmt.Errorf("send symlink: %w", err)
	}
	if len(target) > maxName || target == "" {
		return fmt.Errorf("send symlink %s: bad target length %d", name, len(target))
	}
	return s.enqueue(ctx, job{kind: kindSymlink, name: name, target: target})
}

// Cache names the files that go through the page cache on both sides
// rather than by direct I/O: those read again soon, such as a log the
// donor compares block by block later. Set it before sending.
func (s *Session) Cache(match func(name string) bool) { s.cache = match }

func (s *Session) cached(name string) bool { return s.cache != nil && s.cache(name) }

// SendFile queues the whole of f (its size when called) for the joiner's
// file name, and takes ownership of f, which is closed once sent. It
// returns when the chunks are queued; errors surface here or at Sync or
// Finish. The joiner truncates any existing file of that name.
func (s *Session) SendFile(ctx context.Context, name string, f *os.File) error {
	st, err := s.checkFile("send file", name, f)
	if err != nil {
		return err
	}
	size := st.Size()
	chunks := max(1, (size+int64(s.chunk)-1)/int64(s.chunk))
	cache := s.cached(name)
	sf := &sendFile{f: f, r: newDirectReader(f, size, cache), name: name}
	sf.left.Store(chunks)
	id := s.nextFile.Add(1)
	mode := uint32(st.Mode().Perm())
	flags := byte(flagWhole)
	if cache {
		flags |= flagCache
	}
	for i := int64(0); i < chunks; i++ {
		off := i * int64(s.chunk)
		j := job{kind: kindChunk, flags: flags, name: name, mode: mode, id: id, off: off,
			n: int(min(int64(s.chunk), size-off)), file: sf}
		if i == chunks-1 {
			j.flags |= flagEOF
		}
		if err := s.enqueue(ctx, j); err != nil {
			sf.release(chunks - i)
			return fmt.Errorf("send %s: %w", name, err)
		}
	}
	return nil
}

func (s *Session) checkFile(what, name string, f *os.File) (fs.FileInfo, error) {
	if err := s.donorOnly(what); err != nil {
		f.Close()
		return nil, err
	}
	if err := checkName(name); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s %s: %w", what, name, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s %s: %s is not a regular file", what, name, f.Name())
	}
	return st, nil
}

// SendRanges queues only ranges of f for the joiner's existing file name,
// which is then truncated or extended to size (delta mode). It takes
// ownership of f.
func (s *Session) SendRanges(ctx context.Context, name string, f *os.File, ranges []Range, size int64) error {
	return s.sendRanges(ctx, "send ranges", name, f, ranges, size, false)
}

// SendSparse queues only ranges of f for the joiner's file name, which is
// created anew with size: what lies outside the ranges reads back as zeros.
// Later SendRanges calls may patch it. It takes ownership of f.
func (s *Session) SendSparse(ctx context.Context, name string, f *os.File, ranges []Range, size int64) error {
	return s.sendRanges(ctx, "send sparse", name, f, ranges, size, true)
}

func (s *Session) sendRanges(ctx context.Context, what, name string, f *os.File, ranges []Range, size int64, fresh bool) error {
	st, err := s.checkFile(what, name, f)
	if err != nil {
		return err
	}
	var chunks, sent int64
	for _, r := range ranges {
		if r.Off < 0 || r.Len < 0 || r.Off+r.Len > size || r.Off+r.Len < r.Off {
			f.Close()
			return fmt.Errorf("%s of %s: range %d+%d outside the size %d", what, name, r.Off, r.Len, size)
		}
		chunks += (r.Len + int64(s.chunk) - 1) / int64(s.chunk)
		sent += r.Len
	}
	id := s.nextFile.Add(1)
	mode := uint32(st.Mode().Perm())
	cache := s.cached(name)
	var flags byte
	if cache {
		flags = flagCache
	}
	if fresh {
		// Truncated at the first frame the joiner sees, whichever it is.
		flags |= flagWhole
	}
	sf := &sendFile{f: f, r: newDirectReader(f, st.Size(), cache), name: name}
	sf.left.Store(chunks + 1)
	defer sf.release(1)
	left := chunks
	for _, r := range ranges {
		for off := r.Off; off < r.Off+r.Len; off += int64(s.chunk) {
			j := job{kind: kindChunk, flags: flags, name: name, mode: mode, id: id, off: off,
				n: int(min(int64(s.chunk), r.Off+r.Len-off)), file: sf}
			if err := s.enqueue(ctx, j); err != nil {
				sf.release(left)
				return fmt.Errorf("send %s: %w", name, err)
			}
			left--
		}
	}
	if err := s.enqueue(ctx, job{kind: kindFileEnd, flags: flags, name: name, mode: mode, id: id, off: size, extra: uint64(sent)}); err != nil {
		return fmt.Errorf("send %s: %w", name, err)
	}
	return nil
}

// SendStream sends r as raw stream id until EOF and returns the bytes sent.
// The joiner reads it, in order, from Stream(id).
func (s *Session) SendStream(ctx context.Context, id uint32, r io.Reader) (int64, error) {
	if err := s.donorOnly("SendStream"); err != nil {
		return 0, err
	}
	var seq uint64
	var total int64
	for {
		b := s.bufs.get()
		n, err := io.ReadFull(r, (*b)[:s.chunk])
		if n > 0 {
			if qerr := s.enqueue(ctx, job{kind: kindStream, id: uint64(id), off: int64(seq), n: n, buf: b}); qerr != nil {
				s.bufs.put(b)
				return total, fmt.Errorf("send stream %d: %w", id, qerr)
			}
			seq++
			total += int64(n)
		} else {
			s.bufs.put(b)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return total, fmt.Errorf("send stream %d: read: %w", id, err)
		}
	}
	if err := s.enqueue(ctx, job{kind: kindStreamEnd, id: uint64(id), off: int64(seq), extra: uint64(total)}); err != nil {
		return total, fmt.Errorf("send stream %d: %w", id, err)
	}
	return total, nil
}

// worker owns one data connection and sends the jobs it takes.
func (s *Session) worker(dc *dataConn) {
	defer s.wg.Done()
	defer s.workers.Done()
	fw := &frameWriter{w: dc.w, hdr: make([]byte, headerSize+maxName+4096), lz4: s.codec == "lz4"}
	fw.before = func(n int) error {
		if err := s.limiter.wait(s.ctx, n); err != nil {
			return err
		}
		if d := s.idle(); d > 0 {
			if sd, ok := dc.w.(interface{ SetWriteDeadline(time.Time) error }); ok {
				sd.SetWriteDeadline(time.Now().Add(d))
			}
		}
		return nil
	}
	buf := alignedBuf(s.chunk)
	// Pings keep the joiner's read deadline alive while the method is busy;
	// behind a filter they would sit in its buffer, so the control
	// channel's pings carry liveness alone there.
	var pingC <-chan time.Time
	if d := s.idle(); d > 0 && dc.flt == nil {
		t := time.NewTicker(max(d/4, 10*time.Millisecond))
		defer t.Stop()
		pingC = t.C
	}
	var last time.Time
	for {
		var j job
		select {
		case <-s.dead:
			return
		case j = <-dc.private:
		case j = <-s.jobs:
		case <-pingC:
			if time.Since(last) < s.idle()/4 {
				continue
			}
			j = job{kind: kindPing}
			s.pending.add(1)
		}
		err := s.send(dc, fw, buf, &j)
		if err == nil && (j.kind == kindBarrier || j.kind == kindEnd) {
			err = s.endSegment(dc, fw, j.kind == kindEnd)
		}
		last = time.Now()
		s.pending.add(-1)
		if j.done != nil {
			j.done <- err
		}
		if err != nil {
			if s.failed() == nil {
				s.fail(err)
			}
			return
		}
		if j.kind == kindEnd {
			return
		}
	}
}

func (s *Session) send(dc *dataConn, fw *frameWriter, buf []byte, j *job) error {
	f := frame{kind: j.kind, flags: j.flags, id: j.id, off: uint64(j.off), mode: j.mode}
	var payload []byte
	var tail [8]byte
	switch j.kind {
	case kindChunk:
		payload = buf[:j.n]
		n, err := j.file.r.ReadAt(payload, j.off)
		j.file.release(1)
		if n < j.n {
			if err != nil && err != io.EOF {
				return fmt.Errorf("read %s: %w", j.file.f.Name(), err)
			}
			if !s.opts.ShrinkOK {
				return fmt.Errorf("read %s: file shrank while being sent: %d of %d bytes at offset %d", j.file.f.Name(), n, j.n, j.off)
			}
			clear(payload[n:])
		}
	case kindStream:
		payload = (*j.buf)[:j.n]
		defer s.bufs.put(j.buf)
	case kindFileEnd, kindStreamEnd:
		binary.LittleEndian.PutUint64(tail[:], j.extra)
		payload = tail[:]
	case kindSymlink:
		payload = []byte(j.target)
	}
	n, err := fw.write(&f, j.name, payload)
	if err != nil {
		if s.failed() != nil {
			return s.err
		}
		if dc.flt != nil && errors.Is(err, syscall.EPIPE) {
			// The compressor died: its exit status and stderr say why.
			if ferr := dc.flt.wait(2 * time.Second); ferr != nil {
				return ferr
			}
		}
		where := ""
		if j.name != "" {
			where = " (sending " + j.name + ")"
		}
		return s.peerAccount(fmt.Errorf("%w%s", netErr(s.peer, "data connection", err, s.idle()), where))
	}
	s.wire.Add(int64(n))
	if j.kind == kindChunk || j.kind == kindStream {
		s.done.Add(int64(len(payload)))
	}
	return nil
}

// barrier puts a frame on every connection once all queued jobs are
// written, and waits until each is written.
func (s *Session) barrier(ctx context.Context, kind byte) (uint64, error) {
	select {
	case <-s.pending.zero():
	case <-s.dead:
		return 0, s.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	s.barriers++
	seq := s.barriers
	done := make(chan error, len(s.data))
	for _, dc := range s.data {
		s.pending.add(1)
		dc.private <- job{kind: kind, id: seq, off: int64(s.nextFile.Load()), done: done}
	}
	s.opts.at("barrier", s)
	for range s.data {
		var err error
		select {
		case err = <-done:
		case <-s.dead:
			// A joiner that hung up right after the barrier arrived
			// does not undo it: every worker hands in the result of the
			// barrier job it took before it returns.
			s.workers.Wait()
			select {
			case err = <-done:
			default:
				return 0, s.err
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if err != nil {
			return 0, err
		}
	}
	return seq, nil
}

func (s *Session) waitAck(ctx context.Context, kind string, seq uint64) (Stats, error) {
	s.opts.at("waitAck", s)
	var a ack
	select {
	case a = <-s.acks:
	case <-s.dead:
		// The joiner may acknowledge and hang up at once (an IST joiner
		// has nothing else to do): an ack read before the end counts.
		<-s.ctrlDone
		select {
		case a = <-s.acks:
		default:
			return Stats{}, s.err
		}
	case <-ctx.Done():
		return Stats{}, ctx.Err()
	}
	if a.Kind != kind || a.Seq != seq {
		err := fmt.Errorf("%s acknowledged %s %d, expected %s %d", s.peer, a.Kind, a.Seq, kind, seq)
		s.fail(err)
		return Stats{}, err
	}
	return a.Stats, nil
}

// Sync waits until the joiner has written and checked everything queued so
// far, and returns the joiner's counts.
func (s *Session) Sync(ctx context.Context) (Stats, error) {
	if err := s.donorOnly("Sync"); err != nil {
		return Stats{}, err
	}
	if s.finished.Load() {
		return Stats{}, fmt.Errorf("sync with %s after Finish", s.peer)
	}
	seq, err := s.barrier(ctx, kindBarrier)
	if err != nil {
		return Stats{}, err
	}
	return s.waitAck(ctx, "_synced", seq)
}

// Finish ends the data: it syncs, tells the joiner no more data follows,
// and returns the joiner's final counts. The control channel stays open.
func (s *Session) Finish(ctx context.Context) (Stats, error) {
	if err := s.donorOnly("Finish"); err != nil {
		return Stats{}, err
	}
	if s.finished.Swap(true) {
		return Stats{}, fmt.Errorf("Finish with %s called twice", s.peer)
	}
	seq, err := s.barrier(ctx, kindEnd)
	if err != nil {
		return Stats{}, err
	}
	st, err := s.waitAck(ctx, "_ended", seq)
	if err == nil {
		s.reportLast()
	}
	return st, err
}

// pendingCount counts queued jobs not yet written; zero tells when all are.
type pendingCount struct {
	mu      sync.Mutex
	n       int
	waiters []chan struct{}
}

func (p *pendingCount) add(d int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += d
	if p.n == 0 {
		for _, w := range p.waiters {
			close(w)
		}
		p.waiters = nil
	}
}

func (p *pendingCount) zero() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := make(chan struct{})
	if p.n == 0 {
		close(w)
	} else {
		p.waiters = append(p.waiters, w)
	}
	return w
}

// drain releases what jobs a failed session left queued: their files
// and buffers.
func (s *Session) drain() {
	if s.jobs == nil {
		return
	}
	for {
		select {
		case j := <-s.jobs:
			if j.file != nil {
				j.file.release(1)
			}
			if j.buf != nil {
				s.bufs.put(j.buf)
			}
		default:
			return
		}
	}
}

// peerAccount is what a broken data connection reports: the joiner's own
// account of why it stopped when it arrives within peerWait, with e, our
// view of the connection, in parentheses; this side's error when it failed
// first; else e.
func (s *Session) peerAccount(e error) error {
	select {
	case <-s.dead:
		var pe *PeerError
		if errors.As(s.err, &pe) {
			return fmt.Errorf("%w (%v)", s.err, e)
		}
		return s.err
	case <-time.After(s.peerWait):
	}
	return e
}
