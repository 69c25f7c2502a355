package transfer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst/progress"
)

// Serve receives data into sink (nil if the donor sends no files) until the
// donor's Finish, and returns the counts. A corrupt or truncated stream
// fails it with an error naming the donor and the file; the donor is told.
func (s *Session) Serve(ctx context.Context, sink *Sink) (Stats, error) {
	if s.role != Joiner {
		return Stats{}, errors.New("Serve: only the joiner receives")
	}
	if !s.serving.CompareAndSwap(false, true) {
		return Stats{}, errors.New("Serve called twice")
	}
	stop := context.AfterFunc(ctx, func() { s.fail(ctx.Err()) })
	defer stop()
	s.report(progress.PhaseWaiting)
	var wg sync.WaitGroup
	var firstMu sync.Mutex
	var first error
	for _, dc := range s.data {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serveConn(dc, sink); err != nil {
				firstMu.Lock()
				if first == nil && err != s.failed() {
					first = err
				}
				firstMu.Unlock()
				s.fail(err)
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	if sink != nil {
		ks := sink.Stats()
		st.Files, st.Dirs, st.Symlinks, st.SyncTime = ks.Files, ks.Dirs, ks.Symlinks, ks.SyncTime
	}
	if err := s.failed(); err != nil {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		if first != nil {
			return st, first
		}
		return st, err
	}
	s.reportLast()
	return st, nil
}

// serveConn decodes one data connection until its end frame.
func (s *Session) serveConn(dc *dataConn, sink *Sink) error {
	fr := &frameReader{r: dc.r, maxChunk: s.chunk}
	bp := s.bufs.get()
	defer func() { s.bufs.put(bp) }()
	where := fmt.Sprintf("data stream %d", dc.index)
	s.opts.at("serveConn", s)
	idle := s.idle()
	if s.codec == "filter" {
		idle = 0 // the filter buffers pings; the control channel watches liveness
	}
	last := ""
	for {
		if idle > 0 {
			dc.conn.SetReadDeadline(time.Now().Add(idle))
		}
		f, name, err := fr.next()
		if err != nil {
			return s.recvErr(dc, where, last, err, idle)
		}
		if name != "" {
			last = name
		}
		var data []byte
		if f.rawLen > 0 || f.wireLen > 0 {
			data, err = fr.payload(&f, *bp)
			if err != nil {
				return s.recvErr(dc, where, fmt.Sprintf("%s at offset %d", last, f.off), err, idle)
			}
		}
		fail := func(err error) error {
			return fmt.Errorf("receive from %s (%s, %s frame): %w", s.peer, where, kindName(f.kind), err)
		}
		needSink := func() error {
			if sink == nil {
				return fail(errors.New("files sent but this joiner expects none"))
			}
			return nil
		}
		s.wire.Add(int64(headerSize + f.nameLen + f.wireLen))
		switch f.kind {
		case kindChunk:
			if err := needSink(); err != nil {
				return err
			}
			if f.off > 1<<62 {
				return fail(fmt.Errorf("%s: bad offset %d", name, f.off))
			}
			if err := sink.chunkSum(f.id, name, f.mode, f.flags, int64(f.off), data, f.crc); err != nil {
				return fail(err)
			}
			s.done.Add(int64(len(data)))
		case kindFileEnd:
			if err := needSink(); err != nil {
				return err
			}
			if len(data) != 8 || f.off > 1<<62 {
				return fail(fmt.Errorf("%s: malformed end of file", name))
			}
			sent := binary.LittleEndian.Uint64(data)
			if sent > 1<<62 {
				return fail(fmt.Errorf("%s: malformed end of file", name))
			}
			if err := sink.fileEnd(f.id, name, f.mode, f.flags, int64(f.off), int64(sent)); err != nil {
				return fail(err)
			}
		case kindDir:
			if err := needSink(); err != nil {
				return err
			}
			if err := sink.dir(name, f.mode); err != nil {
				return fail(err)
			}
		case kindSymlink:
			if err := needSink(); err != nil {
				return err
			}
			if err := sink.symlink(name, string(data)); err != nil {
				return fail(err)
			}
		case kindStream:
			if f.id > 1<<32-1 {
				return fail(fmt.Errorf("bad stream id %d", f.id))
			}
			st := s.rxStream(uint32(f.id))
			nb := s.bufs.get()
			if err := st.put(s, f.off, bp, len(data)); err != nil {
				s.bufs.put(nb)
				return fail(err)
			}
			bp = nb
			s.done.Add(int64(len(data)))
		case kindStreamEnd:
			if f.id > 1<<32-1 || len(data) != 8 {
				return fail(errors.New("malformed stream end"))
			}
			if err := s.rxStream(uint32(f.id)).end(s, f.off, int64(binary.LittleEndian.Uint64(data))); err != nil {
				return fail(err)
			}
			s.nStreams.Add(1)
		case kindBarrier, kindEnd:
			if len(data) != 0 {
				return fail(errors.New("malformed barrier"))
			}
			if err := s.arrive(f.id, f.off, f.kind == kindEnd, sink); err != nil {
				if s.failed() != nil {
					return s.err
				}
				return fail(err)
			}
			if f.kind == kindEnd {
				return nil
			}
		case kindPing:
		}
	}
}

// recvErr explains a failed read, preferring the donor's own account of
// why it stopped when it sends one.
func (s *Session) recvErr(dc *dataConn, where, last string, err error, idle time.Duration) error {
	if s.failed() != nil {
		return s.err
	}
	e := netErr(s.peer, where, err, idle)
	if last != "" {
		e = fmt.Errorf("%w (in or after %s)", e, last)
	}
	if errors.Is(err, errCorrupt) {
		return e
	}
	// The donor's account may be just behind on the control channel.
	select {
	case <-s.dead:
		var pe *PeerError
		if errors.As(s.err, &pe) {
			return fmt.Errorf("%v; %w", e, s.err)
		}
		return s.err // this side failed first; the broken stream is its echo
	case <-time.After(s.peerWait):
	}
	return e
}

// rendezvous gathers every connection at a barrier: the checks run once
// all have delivered everything sent before it.
type rendezvous struct {
	mu      sync.Mutex
	seq     uint64
	end     bool
	arrived int
	gen     *rvGen
}

type rvGen struct {
	release chan struct{}
	err     error
}

func (s *Session) arrive(seq, files uint64, end bool, sink *Sink) error {
	rv := &s.rv
	rv.mu.Lock()
	if rv.arrived == 0 {
		rv.seq, rv.end, rv.gen = seq, end, &rvGen{release: make(chan struct{})}
	} else if seq != rv.seq || end != rv.end {
		rv.mu.Unlock()
		return fmt.Errorf("barrier %d on one stream, %d on another", seq, rv.seq)
	}
	rv.arrived++
	g := rv.gen
	if rv.arrived < len(s.data) {
		rv.mu.Unlock()
		select {
		case <-g.release:
			return g.err
		case <-s.dead:
			return s.err
		}
	}
	rv.arrived = 0
	g.err = s.checkpoint(seq, files, end, sink)
	close(g.release)
	rv.mu.Unlock()
	return g.err
}

// checkpoint runs when all connections reached barrier seq: every file the
// donor had queued must be complete, then the donor gets the counts.
func (s *Session) checkpoint(seq, files uint64, end bool, sink *Sink) error {
	st := s.Stats()
	if sink != nil {
		if err := sink.incomplete(); err != nil {
			return err
		}
		if err := sink.verified(); err != nil {
			return err
		}
		ks := sink.Stats()
		if uint64(ks.Files) != files {
			return fmt.Errorf("the donor sent %d files, %d arrived complete", files, ks.Files)
		}
		if end && !s.opts.NoSync {
			if err := sink.sync(); err != nil {
				return err
			}
		}
		st.Files, st.Dirs, st.Symlinks = ks.Files, ks.Dirs, ks.Symlinks
	} else if files != 0 {
		return fmt.Errorf("the donor sent %d files but this joiner expects none", files)
	}
	kind := "_synced"
	if end {
		kind = "_ended"
	}
	return s.sendCtl(kind, ack{Seq: seq, Stats: st}, max(s.idle(), time.Second))
}

// rxStream puts a raw stream's frames back in order for its reader.
type rxStream struct {
	id      uint32
	mu      sync.Mutex
	cond    *sync.Cond
	pending map[uint64]rxChunk
	next    uint64
	cur     []byte
	curBuf  *[]byte
	ended   bool
	count   uint64
	total   int64
	got     int64
	s       *Session
}

type rxChunk struct {
	buf *[]byte
	n   int
}

func (s *Session) rxStream(id uint32) *rxStream {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	st := s.streams[id]
	if st == nil {
		st = &rxStream{id: id, pending: map[uint64]rxChunk{}, s: s}
		st.cond = sync.NewCond(&st.mu)
		s.streams[id] = st
		if s.failed() != nil {
			st.wake()
		}
	}
	return st
}

func (st *rxStream) wake() {
	st.mu.Lock()
	st.cond.Broadcast()
	st.mu.Unlock()
}

// put hands a chunk to the reader. A chunk that is not the next one waits
// while enough others are buffered, which bounds memory; the next one
// never waits, so the streams cannot deadlock.
func (st *rxStream) put(s *Session, seq uint64, b *[]byte, n int) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	limit := 2 * len(s.data)
	if seq > st.next+1<<24 {
		return fmt.Errorf("stream %d: chunk %d is too far ahead of %d", st.id, seq, st.next)
	}
	for seq != st.next && len(st.pending) >= limit && s.failed() == nil {
		if s.noWait {
			return fmt.Errorf("stream %d: chunk %d would wait for %d", st.id, seq, st.next)
		}
		st.cond.Wait()
	}
	if err := s.failed(); err != nil {
		return err
	}
	if _, dup := st.pending[seq]; dup || seq < st.next || st.ended && seq >= st.count {
		return fmt.Errorf("stream %d: unexpected chunk %d", st.id, seq)
	}
	st.pending[seq] = rxChunk{b, n}
	st.got += int64(n)
	st.cond.Broadcast()
	return nil
}

func (st *rxStream) end(s *Session, count uint64, total int64) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ended {
		return fmt.Errorf("stream %d ended twice", st.id)
	}
	st.ended, st.count, st.total = true, count, total
	st.cond.Broadcast()
	return nil
}

// Stream returns the reader of raw stream id. It reads io.EOF after the
// donor's end of the stream, and the session's error if it fails first.
// Serve must be running for data to arrive.
func (s *Session) Stream(id uint32) io.Reader { return s.rxStream(id) }

func (st *rxStream) Read(p []byte) (int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for {
		if len(st.cur) > 0 {
			n := copy(p, st.cur)
			st.cur = st.cur[n:]
			if len(st.cur) == 0 {
				st.s.bufs.put(st.curBuf)
				st.curBuf = nil
			}
			return n, nil
		}
		if c, ok := st.pending[st.next]; ok {
			delete(st.pending, st.next)
			st.next++
			st.cur, st.curBuf = (*c.buf)[:c.n], c.buf
			st.cond.Broadcast()
			continue
		}
		if st.ended && st.next >= st.count {
			if st.got != st.total || st.next != st.count {
				return 0, fmt.Errorf("stream %d from %s: %d bytes received, the donor sent %d", st.id, st.s.peer, st.got, st.total)
			}
			return 0, io.EOF
		}
		if err := st.s.failed(); err != nil {
			return 0, err
		}
		st.cond.Wait()
	}
}
