package endpoint

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Server serves the endpoint. Create it with Listen, run it with Serve.
type Server struct {
	cfg      *Config
	snapshot func() *Snapshot
	metrics  *Metrics
	ln       net.Listener
	srv      *http.Server
}

// Listen listens on cfg.Address (with TLS when cfg.TLS is set). snapshot
// returns the state last published, nil before the first.
func Listen(cfg *Config, snapshot func() *Snapshot, m *Metrics, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("listen for HTTP (http-address %s): %w", cfg.Address, err)
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	s := &Server{cfg: cfg, snapshot: snapshot, metrics: m, ln: ln}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		// Refused TLS clients and broken connections: not worth a warning
		// each, a load balancer may cause many.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers until ctx is done, then closes the listener and the
// connections.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.srv.Close() })
	defer stop()
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serve HTTP: %w", err)
}

// Handler routes the endpoint's paths.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// clustercheck under xinetd answers whatever the request; HAProxy's
	// httpchk sends OPTIONS unless told otherwise.
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		v := s.cfg.Clustercheck(s.snapshot(), time.Now())
		code := http.StatusServiceUnavailable
		if v.OK {
			code = http.StatusOK
		}
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		h.Set("Connection", "close")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Length", strconv.Itoa(len(v.Body)))
		w.WriteHeader(code)
		if r.Method != http.MethodHead {
			w.Write([]byte(v.Body))
		}
		s.metrics.request("/", code)
	})
	roles := map[string]func(*Snapshot, time.Time) Verdict{
		"/synced":            Synced,
		"/donor-ok":          DonorOK,
		"/primary-component": PrimaryComponent,
	}
	for path, check := range roles {
		mux.HandleFunc(path, s.readOnly(path, func(w http.ResponseWriter, r *http.Request) int {
			v := check(s.snapshot(), time.Now())
			code := http.StatusServiceUnavailable
			if v.OK {
				code = http.StatusOK
			}
			w.Header().Set("Connection", "close")
			writeJSON(w, r, code, v)
			return code
		}))
	}
	mux.HandleFunc("/health", s.readOnly("/health", func(w http.ResponseWriter, r *http.Request) int {
		snap := s.snapshot()
		now := time.Now()
		body := struct {
			*Snapshot
			Clustercheck Verdict `json:"clustercheck"`
		}{snap, s.cfg.Clustercheck(snap, now)}
		if snap == nil {
			body.Snapshot = &Snapshot{}
		}
		code := http.StatusServiceUnavailable
		if snap != nil && snap.fresh(now, StaleAfter) {
			code = http.StatusOK
		}
		writeJSON(w, r, code, body)
		return code
	}))
	mux.Handle("/metrics", s.metrics.Handler())
	return mux
}

// readOnly answers GET, HEAD and OPTIONS with f, other methods with 405.
func (s *Server) readOnly(path string, f func(http.ResponseWriter, *http.Request) int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			s.metrics.request(path, f(w, r))
		default:
			w.Header().Set("Allow", "GET, HEAD, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			s.metrics.request(path, http.StatusMethodNotAllowed)
		}
	}
}

func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(append(b, '\n'))
	}
}
