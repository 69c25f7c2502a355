package quorum

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Auth is how peers prove who they are: a shared secret (HMAC
// challenge-response, both ways), mutual TLS, or both.
type Auth struct {
	Secret []byte
	// ServerTLS and ClientTLS are set together, from [sst] tcert, tkey
	// and tca: each side presents its certificate and verifies the other's
	// chain against the CA.
	ServerTLS, ClientTLS *tls.Config
}

// Configured reports whether any authentication is set.
func (a Auth) Configured() bool { return len(a.Secret) > 0 || a.ServerTLS != nil }

// exchangeTimeout bounds one exchange, dial included.
const exchangeTimeout = 2 * time.Second

// Server answers peers with this node's State. Create it with Listen,
// update the state with Set, run it with Serve.
type Server struct {
	ln    net.Listener
	auth  Auth
	log   *slog.Logger
	state atomic.Pointer[State]
	setMu sync.Mutex // Update is called from more than one goroutine

	mu     sync.Mutex
	warned map[string]time.Time // peer host -> last auth failure logged
}

// Listen listens on addr (host:port) for peers.
func Listen(addr string, auth Auth, log *slog.Logger) (*Server, error) {
	if !auth.Configured() {
		return nil, errors.New("quorum: peer channel without authentication")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for peers (peer-address %s): %w", addr, err)
	}
	if auth.ServerTLS != nil {
		ln = tls.NewListener(ln, auth.ServerTLS)
	}
	return &Server{ln: ln, auth: auth, log: log, warned: map[string]time.Time{}}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Set replaces the state served.
func (s *Server) Set(st State) { s.state.Store(&st) }

// State is the state served, the zero State before Set.
func (s *Server) State() State {
	if p := s.state.Load(); p != nil {
		return *p
	}
	return State{}
}

// Update changes the served state with f.
func (s *Server) Update(f func(*State)) {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	st := s.State()
	f(&st)
	s.Set(st)
}

// Serve answers peers until ctx is done; it closes the listener.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept peer: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			if err := s.answer(c); err != nil && errors.Is(err, ErrAuth) {
				s.warnAuth(c.RemoteAddr(), err)
			}
		}()
	}
}

// Close stops the listener.
func (s *Server) Close() error { return s.ln.Close() }

func (s *Server) warnAuth(addr net.Addr, err error) {
	host, _, _ := net.SplitHostPort(addr.String())
	s.mu.Lock()
	last, ok := s.warned[host]
	if !ok || time.Since(last) > time.Minute {
		s.warned[host] = time.Now()
	}
	s.mu.Unlock()
	if !ok || time.Since(last) > time.Minute {
		// Text logs show the message alone: it names the peer and why.
		s.log.Warn("peer refused", slog.String("peer", addr.String()), slog.Any("error", err))
	}
}

func (s *Server) answer(c net.Conn) error {
	c.SetDeadline(time.Now().Add(exchangeTimeout))
	if tc, ok := c.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			var ve *tls.CertificateVerificationError
			if errors.As(err, &ve) && len(ve.UnverifiedCertificates) > 0 {
				pc := ve.UnverifiedCertificates[0]
				return fmt.Errorf("%w: TLS: peer certificate %q (issuer %q): %v", ErrAuth, pc.Subject.CommonName, pc.Issuer.CommonName, ve.Err)
			}
			return fmt.Errorf("%w: TLS: %v", ErrAuth, err)
		}
	}
	ns := newNonce()
	if err := writeFrame(c, hello{V: protoVersion, Nonce: ns}); err != nil {
		return err
	}
	var a ask
	if err := readFrame(c, &a); err != nil {
		return err
	}
	if a.V != protoVersion || !validNonce(a.Nonce) {
		writeFrame(c, reply{V: protoVersion, Error: "bad request"})
		return fmt.Errorf("peer %s: bad request", c.RemoteAddr())
	}
	if !macOK(s.auth.Secret, a.MAC, "ask", ns, a.Nonce) {
		writeFrame(c, reply{V: protoVersion, Error: "authentication failed"})
		return fmt.Errorf("%w: wrong shared secret (peer-secret-file)", ErrAuth)
	}
	st, err := json.Marshal(s.State())
	if err != nil {
		return err
	}
	return writeFrame(c, reply{V: protoVersion, State: st, MAC: mac(s.auth.Secret, "state", a.Nonce, ns, string(st))})
}

// Query asks the peer at addr for its state.
func Query(ctx context.Context, addr string, auth Auth) (*State, error) {
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if auth.ClientTLS != nil {
		tc := tls.Client(c, auth.ClientTLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("%w: TLS: %v", ErrAuth, err)
		}
		c = tc
	}
	var h hello
	if err := readFrame(c, &h); err != nil {
		// Under TLS 1.3 the server judges our certificate after our
		// handshake is done: its refusal is an alert on the first read.
		var oe *net.OpError
		if auth.ClientTLS != nil && errors.As(err, &oe) && oe.Op == "remote error" {
			return nil, fmt.Errorf("%w: TLS: the peer refused this node's certificate ([sst] tcert): %v", ErrAuth, oe)
		}
		return nil, err
	}
	if h.V != protoVersion || !validNonce(h.Nonce) {
		return nil, fmt.Errorf("bad hello (protocol %d)", h.V)
	}
	nc := newNonce()
	if err := writeFrame(c, ask{V: protoVersion, Nonce: nc, MAC: mac(auth.Secret, "ask", h.Nonce, nc)}); err != nil {
		return nil, err
	}
	var r reply
	if err := readFrame(c, &r); err != nil {
		return nil, err
	}
	if r.Error != "" {
		if r.Error == "authentication failed" {
			return nil, fmt.Errorf("%w: the peer refused our shared secret", ErrAuth)
		}
		return nil, fmt.Errorf("peer: %s", r.Error)
	}
	if !macOK(auth.Secret, r.MAC, "state", nc, h.Nonce, string(r.State)) {
		return nil, fmt.Errorf("%w: the peer's answer does not carry our shared secret", ErrAuth)
	}
	return DecodeState(r.State)
}

// NewTLS builds mutual TLS from PEM files: cert (which may hold the key
// too when key is empty) and a CA file, which is required.
func NewTLS(cert, key, ca string) (server, client *tls.Config, err error) {
	if ca == "" {
		return nil, nil, errors.New("peer-tls needs a CA ([sst] tca): without one a peer cannot be verified")
	}
	if cert == "" {
		return nil, nil, errors.New("peer-tls needs a certificate ([sst] tcert)")
	}
	if key == "" {
		key = cert
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, nil, fmt.Errorf("peer-tls: [sst] tcert=%s tkey=%s: %w", cert, key, err)
	}
	pem, err := readFile(ca)
	if err != nil {
		return nil, nil, fmt.Errorf("peer-tls: [sst] tca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("peer-tls: [sst] tca=%s: no PEM certificate found", ca)
	}
	server = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	// Peers are addressed by IP, which certificates rarely name: the chain
	// is what is checked, as for SST.
	// The client certificate is sent whatever CAs the server names: left to
	// choose, crypto/tls sends none from another CA, and the peer could
	// only say that none came.
	client = &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil },
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("peer presented no certificate")
			}
			opts := x509.VerifyOptions{Roots: pool, Intermediates: x509.NewCertPool()}
			for _, ic := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(ic)
			}
			if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
				return fmt.Errorf("peer certificate %q: %w", cs.PeerCertificates[0].Subject.CommonName, err)
			}
			return nil
		}}
	return server, client, nil
}
