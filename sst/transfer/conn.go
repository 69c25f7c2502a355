package transfer

import (
	"context"
	"crypto/hmac"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

const handshakeTimeout = 15 * time.Second

// magic is the first thing a donor sends on every connection, so that a
// joiner tells a plain donor from a TLS one, or a stray client, at once.
const magic = "GSST\x00v1\n"

// dataConn is one data connection and, when a filter is in use, the
// process between it and the frames.
type dataConn struct {
	index   int
	conn    net.Conn
	raw     net.Conn // the TCP connection under TLS, for keepalive and buffers
	r       io.Reader
	w       io.Writer
	flt     *filter        // donor: the compressor of the current segment
	copyErr chan error     // donor: the segment writer's result
	pr      *io.PipeReader // joiner: decompressed frames from the pump
	private chan job       // donor: barrier and end frames for this connection
}

func keepAliveConfig(o *Options) net.KeepAliveConfig {
	ka := net.KeepAliveConfig{Enable: true, Idle: dur(o.KeepAlive, DefaultKeepAlive), Interval: 5 * time.Second, Count: 4}
	if ka.Idle == 0 {
		ka.Enable = false
	}
	if o.SockOpt.KeepIdle > 0 {
		ka.Idle = o.SockOpt.KeepIdle
	}
	if o.SockOpt.KeepInterval > 0 {
		ka.Interval = o.SockOpt.KeepInterval
	}
	if o.SockOpt.KeepCount > 0 {
		ka.Count = o.SockOpt.KeepCount
	}
	return ka
}

func tuneConn(c net.Conn, o *Options) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	tc.SetNoDelay(true)
	if o.SockOpt.SendBuf > 0 {
		tc.SetWriteBuffer(o.SockOpt.SendBuf)
	}
	if o.SockOpt.RecvBuf > 0 {
		tc.SetReadBuffer(o.SockOpt.RecvBuf)
	}
}

// explained is an error reworded for the operator that still unwraps to
// its cause, so callers can classify it (errors.Is, errors.As).
type explained struct {
	msg  string
	err  error
	kind error // a sentinel the error also matches, e.g. ErrTLS
}

func (e *explained) Error() string        { return e.msg }
func (e *explained) Unwrap() error        { return e.err }
func (e *explained) Is(target error) bool { return e.kind != nil && target == e.kind }

// ErrTLS matches (errors.Is) every failure of a TLS handshake on either
// side: no certificate, an untrusted one, or a peer that does not speak
// TLS. The message says which.
var ErrTLS = errors.New("TLS handshake failed")

func explain(err error, format string, args ...any) error {
	return &explained{msg: fmt.Sprintf(format, args...), err: err}
}

func explainTLS(err error, format string, args ...any) error {
	return &explained{msg: fmt.Sprintf(format, args...), err: err, kind: ErrTLS}
}

// tlsError explains a TLS failure in the words of the options.
func tlsError(peer string, err error) error {
	s := err.Error()
	switch {
	case strings.Contains(s, "remote error: tls:"):
		return explainTLS(err, "%s refused our TLS certificate (%v): check [sst] tcert, tkey and tca on both nodes", peer, err)
	case strings.Contains(s, "didn't provide a certificate"), strings.Contains(s, "certificate required"):
		return explainTLS(err, "%s presented no TLS certificate (%v): it needs [sst] tcert and tkey", peer, err)
	case strings.Contains(s, "x509:") || strings.Contains(s, "certificate"):
		return explainTLS(err, "%s presented a TLS certificate we do not trust (%v): check [sst] tca on both nodes", peer, err)
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return explainTLS(err, "%s closed the connection during the TLS handshake: does it speak TLS? set the same [sst] encrypt/ssl-mode on both nodes (its log has the reason)", peer)
	case strings.Contains(s, "first record does not look like a TLS handshake"):
		return explainTLS(err, "%s does not speak TLS (%v): set the same [sst] encrypt/ssl-mode on both nodes", peer, err)
	}
	return explainTLS(err, "TLS handshake with %s: %v", peer, err)
}

func isTLSAuthErr(err error) bool {
	s := err.Error()
	return strings.Contains(s, "certificate") || strings.Contains(s, "x509:") || strings.Contains(s, "remote error: tls:")
}

// netErr names the peer and the cause of a connection error.
func netErr(peer, what string, err error, idle time.Duration) error {
	var ne net.Error
	switch {
	case (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) && strings.HasPrefix(what, "data"):
		return explain(err, "%s closed the %s before the end of the data (truncated)", peer, what)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return explain(err, "%s closed the %s (the peer died or gave up)", peer, what)
	case errors.Is(err, syscall.ECONNRESET):
		return explain(err, "%s reset the %s (peer died?)", peer, what)
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		return explain(err, "no data from %s on the %s for %v (idle timeout): the peer is stalled or gone", peer, what, idle)
	case errors.Is(err, errCorrupt):
		return fmt.Errorf("corrupt data from %s on the %s: %w", peer, what, err)
	}
	return fmt.Errorf("%s with %s: %w", what, peer, err)
}

// dialOne connects one connection and runs the donor's half of the
// handshake.
func dialOne(ctx context.Context, o *Options, addr Address, tcfg *tls.Config, secret string, h donorHello) (net.Conn, net.Conn, error) {
	peer := "joiner " + addr.HostPort()
	d := net.Dialer{Timeout: 10 * time.Second, KeepAliveConfig: keepAliveConfig(o)}
	var raw net.Conn
	var err, refused error
	// A joiner listens before it prints "ready", so a refusal is likely
	// final; a few seconds of retries cover a slow accept backlog.
	retryUntil := time.Now().Add(10 * time.Second)
	for {
		raw, err = d.DialContext(ctx, "tcp", addr.HostPort())
		if errors.Is(err, syscall.ECONNREFUSED) {
			refused = err
		} else if err != nil && refused != nil {
			err = refused // the context ended the retries; the refusal is the news
		}
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(retryUntil) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", peer, err)
	}
	tuneConn(raw, o)
	c := raw
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	raw.SetDeadline(time.Now().Add(handshakeTimeout))
	if tcfg != nil {
		tc := tls.Client(raw, tcfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, nil, tlsError(peer, err)
		}
		c = tc
	}
	fail := func(err error) (net.Conn, net.Conn, error) {
		c.Close()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, err
	}
	if _, err := c.Write([]byte(magic)); err != nil {
		return fail(netErr(peer, "handshake", err, handshakeTimeout))
	}
	var jh joinerHello
	if err := readMsg(c, 4096, &jh); err != nil {
		if tcfg == nil && errors.Is(err, io.EOF) {
			return fail(explainTLS(err, "%s closed the connection during the handshake: if it expects TLS, set the same [sst] encrypt/ssl-mode on both nodes (the joiner's log has its reason)", peer))
		}
		if tcfg != nil && isTLSAuthErr(err) {
			return fail(tlsError(peer, err))
		}
		if tcfg == nil && errors.Is(err, errCorrupt) {
			return fail(fmt.Errorf("%s did not answer with the native SST protocol (TLS expected? set the same [sst] encrypt/ssl-mode on both nodes): %v", peer, err))
		}
		return fail(netErr(peer, "handshake", err, handshakeTimeout))
	}
	if jh.Error != "" { // only sent to a plain donor by a TLS joiner
		return fail(explainTLS(nil, "%s refused the session: %s", peer, jh.Error))
	}
	if jh.Proto != protoName {
		return fail(fmt.Errorf("%s speaks %q, not the native SST protocol", peer, jh.Proto))
	}
	if jh.Version != ProtocolVersion {
		return fail(fmt.Errorf("%s speaks native SST protocol version %d, this donor %d: upgrade both nodes to the same release", peer, jh.Version, ProtocolVersion))
	}
	h.Proto, h.Version, h.Nonce = protoName, ProtocolVersion, nonce()
	h.MAC = h.mac(secret, jh.Nonce)
	if err := writeMsg(c, &h); err != nil {
		return fail(netErr(peer, "handshake", err, handshakeTimeout))
	}
	var rep joinerReply
	if err := readMsg(c, 4096, &rep); err != nil {
		if tcfg != nil && isTLSAuthErr(err) {
			return fail(tlsError(peer, err))
		}
		return fail(netErr(peer, "handshake", err, handshakeTimeout))
	}
	if !rep.OK {
		return fail(fmt.Errorf("%s refused the session: %s", peer, rep.Error))
	}
	if !hmac.Equal([]byte(rep.MAC), []byte(joinerMAC(secret, jh.Nonce, h.Nonce, h.Session))) {
		return fail(fmt.Errorf("%s does not know the session secret: it is not the joiner that asked for this SST", peer))
	}
	raw.SetDeadline(time.Time{})
	return c, raw, nil
}

// accepted is the result of the joiner's half of one handshake.
type accepted struct {
	conn, raw net.Conn
	hello     donorHello
	from      string
	err       error
	fatal     bool // a misconfigured donor rather than a stray connection
}

// handshakeIn runs the joiner's half of the handshake on an accepted
// connection.
func (l *Listener) handshakeIn(ctx context.Context, raw net.Conn) accepted {
	from := "donor " + raw.RemoteAddr().String()
	a := accepted{raw: raw, from: from}
	tuneConn(raw, &l.opts)
	raw.SetDeadline(time.Now().Add(handshakeTimeout))
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c := raw
	fail := func(err error, fatal bool) accepted {
		c.Close()
		a.err, a.fatal = err, fatal
		return a
	}
	if l.tls != nil {
		// A plain native donor is told so, and fails the SST at once,
		// unlike a stray client.
		var m [len(magic)]byte
		if _, err := io.ReadFull(raw, m[:]); err != nil {
			return fail(netErr(from, "handshake", err, handshakeTimeout), false)
		}
		if string(m[:]) == magic {
			writeMsg(raw, &joinerHello{Proto: protoName, Version: ProtocolVersion, Error: "this joiner requires TLS: set the same [sst] encrypt/ssl-mode and certificates on both nodes"})
			return fail(explainTLS(nil, "%s does not speak TLS, this joiner requires it: set the same [sst] encrypt/ssl-mode on both nodes", from), true)
		}
		tc := tls.Server(&prefixConn{Conn: raw, prefix: m[:]}, l.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(tlsError(from, err), isTLSAuthErr(err))
		}
		c = tc
	}
	var m [len(magic)]byte
	if _, err := io.ReadFull(c, m[:]); err != nil {
		return fail(netErr(from, "handshake", err, handshakeTimeout), false)
	}
	if string(m[:]) != magic {
		if l.tls == nil && m[0] == 0x16 && m[1] == 0x03 {
			return fail(explainTLS(nil, "%s speaks TLS but this joiner does not: set the same [sst] encrypt/ssl-mode on both nodes", from), true)
		}
		return fail(fmt.Errorf("%s is not a native SST donor (got %q)", from, m[:]), false)
	}
	jn := nonce()
	if err := writeMsg(c, &joinerHello{Proto: protoName, Version: ProtocolVersion, Nonce: jn}); err != nil {
		return fail(netErr(from, "handshake", err, handshakeTimeout), false)
	}
	var h donorHello
	if err := readMsg(c, 4096, &h); err != nil {
		if l.tls == nil && errors.Is(err, errCorrupt) {
			return fail(fmt.Errorf("%s sent something other than the native SST protocol (TLS on the donor only? set the same [sst] encrypt/ssl-mode on both nodes): %v", from, err), false)
		}
		return fail(netErr(from, "handshake", err, handshakeTimeout), false)
	}
	reply := func(msg string, fatal bool) accepted {
		writeMsg(c, &joinerReply{Error: msg})
		return fail(fmt.Errorf("%s: %s", from, msg), fatal)
	}
	switch {
	case h.Proto != protoName:
		return reply(fmt.Sprintf("unknown protocol %q", h.Proto), false)
	case h.Version != ProtocolVersion:
		return reply(fmt.Sprintf("native SST protocol version %d, this joiner speaks %d: upgrade both nodes to the same release", h.Version, ProtocolVersion), true)
	case !hmac.Equal([]byte(h.MAC), []byte(h.mac(l.secret, jn))):
		return reply("wrong session secret: this donor was not sent to this joiner (stale or stray connection)", false)
	case h.Conn != "control" && h.Conn != "data":
		return reply(fmt.Sprintf("unknown connection kind %q", h.Conn), true)
	case h.Streams < 1 || h.Streams > MaxStreams || h.Index < 0 || h.Index >= h.Streams:
		return reply(fmt.Sprintf("bad stream %d of %d", h.Index, h.Streams), true)
	case h.Chunk < 1 || h.Chunk > MaxChunkSize:
		return reply(fmt.Sprintf("bad chunk size %d", h.Chunk), true)
	case h.Codec != "" && h.Codec != "lz4" && h.Codec != "filter":
		return reply(fmt.Sprintf("unknown codec %q", h.Codec), true)
	case h.Codec == "filter" && l.opts.Decompressor == "":
		return reply(fmt.Sprintf("donor compresses with the filter %q but [sst] decompressor is not set on the joiner", h.Filter), true)
	case h.Codec == "filter" && isLZ4(l.opts.Decompressor):
		return reply(fmt.Sprintf("donor compresses with the filter %q but the joiner's [sst] decompressor %q is the built-in lz4", h.Filter, l.opts.Decompressor), true)
	}
	if err := writeMsg(c, &joinerReply{OK: true, MAC: joinerMAC(l.secret, jn, h.Nonce, h.Session)}); err != nil {
		return fail(netErr(from, "handshake", err, handshakeTimeout), false)
	}
	raw.SetDeadline(time.Time{})
	a.conn, a.hello = c, h
	return a
}

// prefixConn replays bytes already read before the connection's own.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
