package transfer

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst/progress"
)

// Listener is the joiner's end: it listens on the SST address and accepts
// one donor session.
type Listener struct {
	addr   Address
	secret string
	opts   Options
	tls    *tls.Config
	ln     net.Listener

	ctx     context.Context
	cancel  context.CancelFunc
	results chan accepted
	wg      sync.WaitGroup
}

// Listen listens on addr (port 0 picks a free port). opts.Role is set to
// Joiner. When addr's host is not an address of this machine (a NAT
// address in wsrep_sst_receive_address), it listens on all addresses.
func Listen(ctx context.Context, addr Address, opts Options) (*Listener, error) {
	opts.Role = Joiner
	tcfg, err := opts.TLS.config(Joiner, addr.Host)
	if err != nil {
		return nil, err
	}
	opts.logIgnored()
	lc := net.ListenConfig{KeepAliveConfig: keepAliveConfig(&opts)}
	ln, err := lc.Listen(ctx, "tcp", addr.HostPort())
	if err != nil && errors.Is(err, syscall.EADDRNOTAVAIL) {
		opts.log().Info("transfer: the host is not local; listening on all addresses", slog.String("host", addr.Host), slog.Int("port", addr.Port))
		ln, err = lc.Listen(ctx, "tcp", fmt.Sprintf(":%d", addr.Port))
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr.HostPort(), err)
	}
	a := addr
	a.Port = ln.Addr().(*net.TCPAddr).Port
	a.Path = ""
	lctx, cancel := context.WithCancel(context.Background())
	l := &Listener{addr: a, secret: nonce(), opts: opts, tls: tcfg, ln: ln,
		ctx: lctx, cancel: cancel, results: make(chan accepted, 16)}
	// Handshakes run from now on: a donor may connect before Accept.
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr is the address to print after "ready": the host as given and the
// port actually bound. Path is left empty for the method to fill in.
func (l *Listener) Addr() Address { return l.addr }

// Secret is the random token a donor must prove it knows; the method puts
// it in the address it prints (hex, so it passes the server's address
// character check).
func (l *Listener) Secret() string { return l.secret }

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(50 * time.Millisecond) // EMFILE and the like
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			a := l.handshakeIn(l.ctx, c)
			select {
			case l.results <- a:
			case <-l.ctx.Done():
				if a.conn != nil {
					a.conn.Close()
				}
			}
		}()
	}
}

// Accept waits for a donor's session: a control connection and all its data
// connections, each with a valid handshake. Stray connections are refused
// and logged; a donor with a bad certificate fails Accept at once. It fails
// after opts.InitialTimeout (sst-initial-timeout).
func (l *Listener) Accept(ctx context.Context) (*Session, error) {
	var timeout <-chan time.Time
	if d := dur(l.opts.InitialTimeout, DefaultInitialTimeout); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	var ctrl *accepted
	data := map[string]map[int]accepted{} // by session id, then index
	var lastReject error
	closeAll := func() {
		if ctrl != nil {
			ctrl.conn.Close()
		}
		for _, m := range data {
			for _, a := range m {
				a.conn.Close()
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			closeAll()
			return nil, ctx.Err()
		case <-timeout:
			closeAll()
			msg := fmt.Sprintf("no donor connected to %s within %v (sst-initial-timeout)", l.addr.HostPort(), dur(l.opts.InitialTimeout, DefaultInitialTimeout))
			if lastReject != nil {
				msg += "; last refused connection: " + lastReject.Error()
			}
			// Unwraps to os.ErrDeadlineExceeded, so callers can tell a timeout.
			return nil, explain(os.ErrDeadlineExceeded, "%s", msg)
		case a := <-l.results:
			if a.err != nil {
				l.opts.log().Warn("transfer: refused a connection", slog.Any("error", a.err))
				if a.fatal {
					closeAll()
					return nil, a.err
				}
				lastReject = a.err
				continue
			}
			h := a.hello
			if h.Conn == "control" {
				if ctrl != nil {
					l.opts.log().Warn("transfer: refused a second session", slog.String("sst_peer", a.from))
					a.conn.Close()
					continue
				}
				ctrl = &a
			} else {
				m := data[h.Session]
				if m == nil {
					m = map[int]accepted{}
					data[h.Session] = m
				}
				if _, dup := m[h.Index]; dup {
					a.conn.Close()
					continue
				}
				m[h.Index] = a
			}
			if ctrl == nil || len(data[ctrl.hello.Session]) < ctrl.hello.Streams {
				continue
			}
			m := data[ctrl.hello.Session]
			delete(data, ctrl.hello.Session)
			for _, other := range data {
				for _, a := range other {
					a.conn.Close()
				}
			}
			conns := make([]accepted, ctrl.hello.Streams)
			for i := range conns {
				conns[i] = m[i]
				if conns[i].hello.Chunk != ctrl.hello.Chunk || conns[i].hello.Codec != ctrl.hello.Codec || conns[i].hello.Streams != ctrl.hello.Streams {
					ctrl.conn.Close()
					for _, a := range m {
						a.conn.Close()
					}
					return nil, fmt.Errorf("%s: data connections disagree with the control connection", ctrl.from)
				}
			}
			s, err := l.newSession(*ctrl, conns)
			if err != nil {
				return nil, err
			}
			return s, nil
		}
	}
}

func (l *Listener) newSession(ctrl accepted, conns []accepted) (*Session, error) {
	h := ctrl.hello
	s := newSession(l.opts, "donor "+ctrl.raw.RemoteAddr().String(), h.Session, h.Chunk, h.Codec)
	s.ctrl, s.ctrlR = ctrl.conn, bufio.NewReader(ctrl.conn)
	for i, a := range conns {
		dc := &dataConn{index: i, conn: a.conn, raw: a.raw, r: bufio.NewReaderSize(a.conn, readBuf)}
		s.data = append(s.data, dc)
	}
	if h.Codec == "filter" {
		for _, dc := range s.data {
			s.startPump(dc)
		}
	}
	s.logSession()
	s.start()
	return s, nil
}

// Close stops listening; an accepted session stays up.
func (l *Listener) Close() error {
	l.cancel()
	err := l.ln.Close()
	l.wg.Wait()
	for {
		select {
		case a := <-l.results:
			if a.conn != nil {
				a.conn.Close()
			}
		default:
			return err
		}
	}
}

// readBuf is the joiner's read buffer per connection: small, because a
// payload read finds most of its bytes outside it and skips the copy.
const readBuf = 64 << 10

// Session is an established transfer between a donor and a joiner. The
// Send methods may be called from several goroutines; Sync and Finish
// must not run while a Send is in progress.
type Session struct {
	role   Role
	peer   string
	opts   Options
	id     string
	chunk  int
	codec  string
	ctx    context.Context
	cancel context.CancelFunc

	ctrl   net.Conn
	ctrlR  *bufio.Reader
	ctrlMu sync.Mutex
	data   []*dataConn

	failOnce sync.Once
	dead     chan struct{}
	err      error
	ctrlDone chan struct{} // closed when readControl has returned

	inboxMu sync.Mutex
	inbox   []Message
	inboxC  chan struct{}
	acks    chan ack

	done, total, wire atomic.Int64
	lastTotal         atomic.Int64

	// reportMu orders the ticker's events with the data's last one, after
	// which (reported) the ticker sends none: the engine's next phase
	// must not be followed by a late "receiving".
	reportMu sync.Mutex
	reported bool

	bufs    *bufPool
	cache   func(name string) bool // files kept out of direct I/O
	wg      sync.WaitGroup         // background goroutines
	workers sync.WaitGroup         // the donor's data workers, also in wg
	filters sync.WaitGroup         // filter processes, until waited for

	// donor
	jobs     chan job
	pending  pendingCount
	nextFile atomic.Uint64
	barriers uint64
	limiter  *limiter
	finished atomic.Bool

	// joiner
	serving  atomic.Bool
	streamMu sync.Mutex
	streams  map[uint32]*rxStream
	rv       rendezvous
	nStreams atomic.Int64
	noWait   bool          // fuzzing: a stream chunk that would wait fails instead
	peerWait time.Duration // how long a broken connection waits for the peer's account

	closeOnce sync.Once
}

type ack struct {
	Kind  string `json:"-"`
	Seq   uint64 `json:"seq"`
	Stats Stats  `json:"stats"`
}

// peerWait bounds the wait, after a broken connection, for the peer's own
// account on the control connection. The account or the control
// connection's own end usually comes at once; the bound only matters when
// the control connection is alive and silent, and a loaded machine can
// hold a goroutine back for much of a second.
const peerWait = 2 * time.Second

func newSession(o Options, peer, id string, chunk int, codec string) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{role: o.Role, peer: peer, opts: o, id: id, chunk: chunk, codec: codec, ctx: ctx, cancel: cancel,
		dead: make(chan struct{}), ctrlDone: make(chan struct{}), inboxC: make(chan struct{}, 1), acks: make(chan ack, 4),
		streams: map[uint32]*rxStream{}, peerWait: peerWait}
	s.bufs = &bufPool{size: chunk, keep: 64}
	return s
}

func (s *Session) logSession() {
	codec := s.codec
	switch codec {
	case "":
		codec = "uncompressed"
	case "filter":
		cmd := s.opts.Compressor
		if s.role == Joiner {
			cmd = s.opts.Decompressor
		}
		codec = "filter " + cmd
	}
	s.opts.log().Info("transfer: session", slog.String("sst_peer", s.PeerAddr()), slog.Int("streams", len(s.data)),
		slog.Int("chunk_kib", s.chunk>>10), slog.String("compression", codec), slog.String("tls", s.opts.TLS.Mode.String()))
}

// start launches the control reader, the pinger and the progress ticker.
func (s *Session) start() {
	s.wg.Add(3)
	go s.readControl()
	go s.pinger()
	go s.ticker()
}

// Role is this side's role.
func (s *Session) Role() Role { return s.role }

// Peer names the other side for errors and logs, e.g. "joiner [::1]:4444".
func (s *Session) Peer() string { return s.peer }

// PeerAddr is the peer's address alone, without its role.
func (s *Session) PeerAddr() string {
	_, addr, _ := strings.Cut(s.peer, " ")
	return addr
}

func (s *Session) idle() time.Duration { return dur(s.opts.IdleTimeout, DefaultIdleTimeout) }

// fail records the session's first error, tells the peer unless the peer
// reported it, and tears the connections down so every goroutine returns.
func (s *Session) fail(err error) {
	s.failOnce.Do(func() {
		s.err = err
		close(s.dead) // before telling the peer, whose reaction may come back fast
		var pe *PeerError
		if !errors.As(err, &pe) && !errors.Is(err, errClosed) && !errors.Is(err, errPeerClosed) {
			msg := err.Error()
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				msg = string(s.role) + " cancelled the SST"
			}
			// Best effort, and never behind a writer stuck on a dead peer.
			if s.ctrlMu.TryLock() {
				s.ctrl.SetWriteDeadline(time.Now().Add(2 * time.Second))
				b, _ := json.Marshal(map[string]string{"msg": msg})
				writeMsg(s.ctrl, Message{Kind: "_error", Body: b})
				s.ctrlMu.Unlock()
			}
		}
		s.cancel()
		for _, dc := range s.data {
			dc.conn.Close()
			if dc.pr != nil {
				dc.pr.CloseWithError(errClosed)
			}
		}
		s.ctrl.Close()
		s.streamMu.Lock()
		for _, st := range s.streams {
			st.wake()
		}
		s.streamMu.Unlock()
	})
}

var (
	errClosed     = errors.New("session closed")
	errPeerClosed = errors.New("peer closed the session")
)

func (s *Session) failed() error {
	select {
	case <-s.dead:
		return s.err
	default:
		return nil
	}
}

func (s *Session) sendCtl(kind string, body any, timeout time.Duration) error {
	var raw json.RawMessage
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("send %q to %s: %w", kind, s.peer, err)
		}
		raw = b
	}
	s.ctrlMu.Lock()
	defer s.ctrlMu.Unlock()
	s.ctrl.SetWriteDeadline(time.Now().Add(timeout))
	if err := writeMsg(s.ctrl, Message{Kind: kind, Body: raw}); err != nil {
		return netErr(s.peer, "control connection", err, timeout)
	}
	return nil
}

// Send sends a control message; body is marshalled to JSON (nil for none).
func (s *Session) Send(kind string, body any) error {
	if err := s.failed(); err != nil {
		return err
	}
	if len(kind) > 0 && kind[0] == '_' {
		return fmt.Errorf("send %q: kinds starting with _ are reserved", kind)
	}
	t := s.idle()
	if t == 0 {
		t = DefaultIdleTimeout
	}
	if err := s.sendCtl(kind, body, t); err != nil {
		s.fail(err)
		return err
	}
	return nil
}

func (s *Session) readControl() {
	defer s.wg.Done()
	defer close(s.ctrlDone)
	for {
		if d := s.idle(); d > 0 {
			s.ctrl.SetReadDeadline(time.Now().Add(d))
		}
		var m Message
		if err := readMsg(s.ctrlR, maxMessage, &m); err != nil {
			if s.failed() == nil {
				s.fail(netErr(s.peer, "control connection", err, s.idle()))
			}
			return
		}
		switch m.Kind {
		case "_ping":
		case "_bye":
			s.fail(explain(errPeerClosed, "%s closed the session", s.peer))
			return
		case "_error":
			var e struct{ Msg string }
			m.Decode(&e)
			s.opts.at("peerError", s)
			s.fail(&PeerError{Peer: s.peer, Msg: e.Msg})
			return
		case "_synced", "_ended":
			var a ack
			if err := m.Decode(&a); err != nil {
				s.fail(fmt.Errorf("%s: %w", s.peer, err))
				return
			}
			a.Kind = m.Kind
			select {
			case s.acks <- a:
			default:
				s.fail(fmt.Errorf("%s sent an unexpected %s", s.peer, m.Kind))
				return
			}
		case "_total":
			var n int64
			if m.Decode(&n) == nil {
				s.total.Store(n)
			}
		default:
			s.opts.at("inbox", s)
			s.inboxMu.Lock()
			s.inbox = append(s.inbox, m)
			s.inboxMu.Unlock()
			select {
			case s.inboxC <- struct{}{}:
			default:
			}
		}
	}
}

func (s *Session) pinger() {
	defer s.wg.Done()
	every := 5 * time.Second
	if d := s.idle(); d > 0 && d/4 < every {
		every = max(d/4, 10*time.Millisecond)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.dead:
			return
		case <-t.C:
			if err := s.sendCtl("_ping", nil, max(s.idle(), time.Second)); err != nil {
				// A peer that hung up may have said why, or sent its last
				// messages, just before: failing here would close the
				// connection before readControl has read them.
				select {
				case <-s.ctrlDone:
				case <-time.After(s.peerWait):
				}
				s.fail(err)
				return
			}
		}
	}
}

func (s *Session) ticker() {
	defer s.wg.Done()
	if s.opts.Reporter == nil {
		return
	}
	t := time.NewTicker(ProgressInterval)
	defer t.Stop()
	var lastDone, lastTotal int64 = -1, -1
	for {
		select {
		case <-s.dead:
			return
		case <-t.C:
			s.reportMu.Lock()
			d, tot := s.done.Load(), s.total.Load()
			if !s.reported && (d != lastDone || tot != lastTotal) {
				lastDone, lastTotal = d, tot
				s.report("")
			}
			s.reportMu.Unlock()
		}
	}
}

// reportLast sends the data's last progress event; the ticker sends no
// more.
func (s *Session) reportLast() {
	s.reportMu.Lock()
	defer s.reportMu.Unlock()
	s.reported = true
	s.report("")
}

func (s *Session) report(phase string) {
	if s.opts.Reporter == nil {
		return
	}
	if phase == "" {
		phase = progress.PhaseSending
		if s.role == Joiner {
			phase = progress.PhaseReceiving
		}
	}
	s.opts.Reporter.Report(progress.Event{Role: string(s.role), Method: s.opts.Method, Phase: phase,
		Done: s.done.Load(), Total: s.total.Load(), Peer: s.peer})
}

// Recv returns the next control message from the peer. An error message from
// the peer is returned as a *PeerError.
func (s *Session) Recv(ctx context.Context) (Message, error) {
	for {
		s.inboxMu.Lock()
		if len(s.inbox) > 0 {
			m := s.inbox[0]
			s.inbox = s.inbox[1:]
			s.inboxMu.Unlock()
			return m, nil
		}
		s.inboxMu.Unlock()
		select {
		case <-s.inboxC:
		case <-s.dead:
			// Messages the peer sent before the end are still delivered,
			// including one readControl is appending right now.
			<-s.ctrlDone
			s.inboxMu.Lock()
			n := len(s.inbox)
			s.inboxMu.Unlock()
			if n == 0 {
				return Message{}, s.err
			}
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}

// PeerFailure waits up to d for the peer's own account of a failure and
// returns it (a *PeerError), or nil when the session ended otherwise or is
// still up after d. A method calls it when its reading of the data failed:
// a donor that gives up mid-stream may have ended the stream cleanly, and
// its reason travels just behind, on the control connection.
func (s *Session) PeerFailure(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.dead:
	case <-t.C:
		return nil
	}
	var pe *PeerError
	if errors.As(s.err, &pe) {
		return s.err
	}
	return nil
}

// Expect receives the next message, fails unless it is of the given kind,
// and decodes its body into v (nil to ignore it).
func (s *Session) Expect(ctx context.Context, kind string, v any) error {
	m, err := s.Recv(ctx)
	if err != nil {
		return err
	}
	if m.Kind != kind {
		return fmt.Errorf("%s sent %q where %q was expected", s.peer, m.Kind, kind)
	}
	if err := m.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", s.peer, err)
	}
	return nil
}

// Abort tells the peer why this side gives up, then closes the session.
func (s *Session) Abort(err error) {
	if err == nil {
		err = errors.New("aborted")
	}
	s.fail(err)
	s.Close()
}

// Close tears the session down: connections closed, filter processes
// waited for. It is safe to call more than once.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		if s.failed() == nil {
			s.sendCtl("_bye", nil, time.Second)
		}
		s.fail(errClosed)
		s.wg.Wait()
		s.drain()
		s.filters.Wait()
	})
	return nil
}

// SetTotal sets the total payload bytes for progress; the donor's value is
// forwarded to the joiner.
func (s *Session) SetTotal(n int64) {
	s.total.Store(n)
	if s.role == Donor && s.lastTotal.Swap(n) != n {
		if err := s.sendCtl("_total", n, max(s.idle(), time.Second)); err != nil {
			s.fail(err)
		}
	}
}

// Done is the payload bytes moved so far.
func (s *Session) Done() int64 { return s.done.Load() }

// Stats are the counts on this side so far (payload, wire, streams; files
// are counted by the joiner's Sink).
func (s *Session) Stats() Stats {
	return Stats{Bytes: s.done.Load(), WireBytes: s.wire.Load(), Streams: s.nStreams.Load()}
}

// bufPool recycles chunk buffers. Unlike sync.Pool it keeps what it is
// given, so a steady transfer allocates nothing, and it is deterministic,
// which fuzzing needs.
type bufPool struct {
	mu   sync.Mutex
	free []*[]byte
	size int
	keep int
}

func (p *bufPool) get() *[]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b
	}
	b := alignedBuf(p.size)
	return &b
}

func (p *bufPool) put(b *[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < p.keep {
		p.free = append(p.free, b)
	}
}
