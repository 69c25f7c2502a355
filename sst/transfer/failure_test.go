package transfer

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
)

func wantErr(t *testing.T, who string, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want one containing %q", who, subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("%s: error %q does not contain %q", who, err, s)
		}
	}
	t.Logf("%s: %v", who, err)
}

func TestInitialTimeout(t *testing.T) {
	ctx := testCtx(t)
	l, err := Listen(ctx, Address{Host: "127.0.0.1"}, Options{InitialTimeout: 300 * time.Millisecond, Log: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A stray client neither fails nor satisfies the joiner.
	c, err := net.Dial("tcp", l.Addr().HostPort())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	defer c.Close()
	start := time.Now()
	_, err = l.Accept(ctx)
	wantErr(t, "joiner", err, "no donor connected", "sst-initial-timeout", "not a native SST donor")
	if d := time.Since(start); d < 250*time.Millisecond || d > 10*time.Second {
		t.Fatalf("timed out after %v", d)
	}
}

func TestStrayConnectionThenDonor(t *testing.T) {
	ctx := testCtx(t)
	l, err := Listen(ctx, Address{Host: "127.0.0.1"}, Options{Log: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, _ := net.Dial("tcp", l.Addr().HostPort())
	c.Write([]byte("hello"))
	defer c.Close()
	// A donor with the wrong secret is refused; the right one gets in.
	_, err = Dial(ctx, l.Addr(), "not-the-secret", Options{Streams: 1})
	var jerr error
	var js *Session
	done := make(chan struct{})
	go func() { js, jerr = l.Accept(ctx); close(done) }()
	wantErr(t, "donor with wrong secret", err, "refused the session", "wrong session secret")
	d, err := Dial(ctx, l.Addr(), l.Secret(), Options{Streams: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	<-done
	if jerr != nil {
		t.Fatal(jerr)
	}
	js.Close()
}

func TestTLSRejections(t *testing.T) {
	c := makeCerts(t)
	joinerTLS := TLS{Mode: TLSVerifyCA, Cert: c.joinerCert, Key: c.joinerKey, CA: c.ca}
	cases := []struct {
		name        string
		joiner      TLS
		donor       TLS
		joinerWants []string
		donorWants  []string
	}{
		{"no client certificate", joinerTLS, TLS{Mode: TLSVerifyCA, CA: c.ca},
			[]string{"donor 127.0.0.1", "no TLS certificate"}, []string{"joiner 127.0.0.1", "refused our TLS certificate"}},
		{"rogue client certificate", joinerTLS, TLS{Mode: TLSVerifyCA, Cert: c.rogueCert, Key: c.rogueKey, CA: c.ca},
			[]string{"donor 127.0.0.1", "do not trust"}, []string{"joiner 127.0.0.1", "refused our TLS certificate"}},
		{"donor distrusts joiner", joinerTLS, TLS{Mode: TLSVerifyCA, Cert: c.donorCert, Key: c.donorKey, CA: c.rogueCA},
			[]string{"donor 127.0.0.1", "refused our TLS certificate"}, []string{"joiner 127.0.0.1", "do not trust"}},
		{"plain donor", joinerTLS, TLS{},
			[]string{"donor 127.0.0.1", "does not speak TLS"}, []string{"joiner 127.0.0.1", "encrypt/ssl-mode"}},
		{"plain joiner", TLS{}, TLS{Mode: TLSVerifyCA, Cert: c.donorCert, Key: c.donorKey, CA: c.ca},
			[]string{"donor 127.0.0.1", "speaks TLS but this joiner does not"}, []string{"joiner 127.0.0.1", "TLS"}},
		{"ssl-crl revokes the donor", TLS{Mode: TLSVerifyCA, Cert: c.joinerCert, Key: c.joinerKey, CA: c.ca, CRL: c.donorCRL},
			TLS{Mode: TLSVerifyCA, Cert: c.donorCert, Key: c.donorKey, CA: c.ca},
			[]string{"donor certificate \"donor\"", "is revoked by " + c.donorCRL}, []string{"joiner 127.0.0.1", "refused our TLS certificate"}},
		{"ssl-crl revokes the joiner", joinerTLS, TLS{Mode: TLSVerifyCA, Cert: c.donorCert, Key: c.donorKey, CA: c.ca, CRL: c.dir},
			[]string{"donor 127.0.0.1"}, []string{"joiner certificate \"joiner\"", "is revoked by " + c.joinerCRL}},
	}
	// ssl-crlpath is a directory: the donor's above reads every list in
	// c.dir but the rogue CA's, which the CA did not sign; it is refused.
	rogueDir := filepath.Join(c.dir, "crls")
	os.Mkdir(rogueDir, 0o755)
	os.Link(c.rogueCRL, filepath.Join(rogueDir, "rogue.crl"))
	if _, err := (&TLS{Mode: TLSVerifyCA, Cert: c.donorCert, Key: c.donorKey, CA: c.ca, CRL: rogueDir, CRLOption: "ssl-crlpath"}).load(); err == nil ||
		!strings.Contains(err.Error(), "[sst] ssl-crlpath: "+rogueDir+"/rogue.crl: not signed by the CA") {
		t.Errorf("a list of another CA: %v", err)
	}
	os.Remove(c.rogueCRL)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, jerr, derr := tryPair(t, "127.0.0.1", Options{TLS: tc.joiner, InitialTimeout: 20 * time.Second}, Options{TLS: tc.donor, Streams: 2})
			wantErr(t, "joiner", jerr, tc.joinerWants...)
			wantErr(t, "donor", derr, tc.donorWants...)
		})
	}
}

// truncating adapts mangle, which says when to cut, to a Proxy's tamper:
// a cut ends the stream to the joiner cleanly.
func truncating(mangle func(conn int, off int64, b []byte) (cut bool)) func(int, int64, []byte) testutil.Verdict {
	if mangle == nil {
		return nil
	}
	return func(conn int, off int64, b []byte) testutil.Verdict {
		if mangle(conn, off, b) {
			return testutil.Truncate
		}
		return testutil.Forward
	}
}

func proxyAddr(t *testing.T, p *testutil.Proxy) Address {
	a, err := ParseAddress(p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// viaProxy runs a donor through a proxy and sends one big file; it returns
// the joiner's and the donor's errors.
func viaProxy(t *testing.T, mangle func(int, int64, []byte) bool, do Options) (jerr, derr error) {
	ctx := testCtx(t)
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "bench/t.ibd"), 4<<20, 7)
	l, err := Listen(ctx, Address{Host: "127.0.0.1"}, Options{Log: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := testutil.NewProxy(t, l.Addr().HostPort(), truncating(mangle))
	do.Log = logtest.New(t)
	do.ChunkSize = 64 << 10
	dch := make(chan *Session, 1)
	go func() {
		d, err := Dial(ctx, proxyAddr(t, p), l.Secret(), do)
		if err != nil {
			t.Errorf("dial: %v", err)
		}
		dch <- d
	}()
	j, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	d := <-dch
	if d == nil {
		t.FailNow()
	}
	defer d.Close()
	sink, _ := OpenSink(dst, SinkOptions{})
	defer sink.Close()
	served := make(chan error, 1)
	go func() { _, err := j.Serve(ctx, sink); served <- err }()
	f, _ := os.Open(filepath.Join(src, "bench/t.ibd"))
	derr = d.SendFile(ctx, "bench/t.ibd", f)
	if derr == nil {
		_, derr = d.Finish(ctx)
	}
	return <-served, derr
}

func TestCorruptChunk(t *testing.T) {
	var flipped atomic.Bool
	jerr, derr := viaProxy(t, func(conn int, off int64, b []byte) bool {
		// Data connections carry megabytes, the control connection little.
		const at = 1<<20 + 12345
		if off <= at && at < off+int64(len(b)) && flipped.CompareAndSwap(false, true) {
			b[at-off] ^= 0x40
		}
		return false
	}, Options{Streams: 2})
	if !flipped.Load() {
		t.Fatal("nothing flipped")
	}
	wantErr(t, "joiner", jerr, "corrupt data from donor 127.0.0.1", "checksum mismatch", "bench/t.ibd")
	wantErr(t, "donor", derr, "joiner", "checksum mismatch")
}

func TestCorruptChunkLZ4(t *testing.T) {
	var flipped atomic.Bool
	jerr, derr := viaProxy(t, func(conn int, off int64, b []byte) bool {
		const at = 300000
		if off <= at && at < off+int64(len(b)) && flipped.CompareAndSwap(false, true) {
			b[at-off] ^= 0x01
		}
		return false
	}, Options{Streams: 1, Compressor: "lz4"})
	if !flipped.Load() {
		t.Fatal("nothing flipped")
	}
	wantErr(t, "joiner", jerr, "corrupt data from donor 127.0.0.1")
	wantErr(t, "donor", derr, "joiner")
}

func TestTruncatedStream(t *testing.T) {
	var cut atomic.Bool
	jerr, derr := viaProxy(t, func(conn int, off int64, b []byte) bool {
		if off+int64(len(b)) > 1<<20 && cut.CompareAndSwap(false, true) {
			return true
		}
		return false
	}, Options{Streams: 2})
	wantErr(t, "joiner", jerr, "donor 127.0.0.1", "truncated", "bench/t.ibd")
	wantErr(t, "donor", derr, "joiner 127.0.0.1", "truncated")
}

// A donor killed mid-transfer closes every socket without a word.
func TestDonorKilled(t *testing.T) {
	ctx := testCtx(t)
	j, d := pair(t, "127.0.0.1", Options{Log: logtest.New(t)}, Options{RateLimit: 1 << 20, Streams: 2})
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "big"), 8<<20, 3)
	sink, _ := OpenSink(dst, SinkOptions{})
	defer sink.Close()
	served := make(chan error, 1)
	go func() { _, err := j.Serve(ctx, sink); served <- err }()
	f, _ := os.Open(filepath.Join(src, "big"))
	go d.SendFile(ctx, "big", f) // blocks while its chunks queue up
	time.Sleep(300 * time.Millisecond)
	d.ctrl.Close()
	for _, dc := range d.data {
		dc.conn.Close()
	}
	start := time.Now()
	select {
	case err := <-served:
		wantErr(t, "joiner", err, "donor 127.0.0.1")
		t.Logf("noticed after %v", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("joiner did not notice the donor's death")
	}
}

func TestJoinerKilled(t *testing.T) {
	ctx := testCtx(t)
	j, d := pair(t, "127.0.0.1", Options{Log: logtest.New(t)}, Options{RateLimit: 4 << 20, Streams: 2})
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "big"), 8<<20, 3)
	sink, _ := OpenSink(dst, SinkOptions{})
	defer sink.Close()
	go j.Serve(ctx, sink)
	f, _ := os.Open(filepath.Join(src, "big"))
	if err := d.SendFile(ctx, "big", f); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	j.ctrl.Close()
	for _, dc := range j.data {
		dc.conn.Close()
	}
	_, err := d.Finish(ctx)
	wantErr(t, "donor", err, "joiner 127.0.0.1")
}

// A stalled peer (alive, silent) is caught by the idle deadline.
func TestIdleTimeout(t *testing.T) {
	ctx := testCtx(t)
	j, d := pair(t, "127.0.0.1", Options{IdleTimeout: 500 * time.Millisecond}, Options{IdleTimeout: time.Hour})
	sink, _ := OpenSink(t.TempDir(), SinkOptions{})
	defer sink.Close()
	// Freeze the donor: no pings on any connection any more.
	d.fail(errors.New("frozen"))
	_ = d
	start := time.Now()
	_, err := j.Serve(ctx, sink)
	if err == nil {
		t.Fatal("no error")
	}
	t.Logf("joiner: %v after %v", err, time.Since(start))
}

func TestStalledDonorIdle(t *testing.T) {
	// A donor that stops everything (SIGSTOP-like): simulate by a proxy that
	// swallows all bytes after the handshake.
	ctx := testCtx(t)
	l, err := Listen(ctx, Address{Host: "127.0.0.1"}, Options{IdleTimeout: 600 * time.Millisecond, Log: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stall atomic.Bool
	p := testutil.NewProxy(t, l.Addr().HostPort(), func(conn int, off int64, b []byte) testutil.Verdict {
		if stall.Load() {
			time.Sleep(time.Hour)
		}
		return testutil.Forward
	})
	dch := make(chan *Session, 1)
	go func() {
		d, err := Dial(ctx, proxyAddr(t, p), l.Secret(), Options{Streams: 1, IdleTimeout: time.Hour})
		if err != nil {
			t.Error(err)
		}
		dch <- d
	}()
	j, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	d := <-dch
	defer d.Close()
	stall.Store(true)
	start := time.Now()
	_, err = j.Serve(ctx, nil)
	wantErr(t, "joiner", err, "no data from donor", "idle timeout")
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("took %v", el)
	}
}

func TestRateLimit(t *testing.T) {
	if testing.Short() && os.Getenv("CI_SLOW") != "" {
		t.Skip()
	}
	ctx := testCtx(t)
	j, d := pair(t, "127.0.0.1", Options{}, Options{RateLimit: 1 << 20})
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "f"), 2<<20, 1)
	sink, _ := OpenSink(dst, SinkOptions{NoSync: true})
	defer sink.Close()
	go j.Serve(ctx, sink)
	start := time.Now()
	f, _ := os.Open(filepath.Join(src, "f"))
	if err := d.SendFile(ctx, "f", f); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 1500*time.Millisecond {
		t.Fatalf("2 MiB at 1 MiB/s took %v", el)
	} else {
		t.Logf("2 MiB at 1 MiB/s took %v", el)
	}
}

// Filter processes are killed and reaped when a session ends early.
func TestFilterNoOrphans(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	j, d := pair(t, "127.0.0.1", Options{Decompressor: "echo $$ >> " + pidfile + "; exec sleep 600"},
		Options{Compressor: "gzip -c", Streams: 2})
	sink, _ := OpenSink(t.TempDir(), SinkOptions{})
	defer sink.Close()
	served := make(chan error, 1)
	go func() { _, err := j.Serve(ctx, sink); served <- err }()
	src := filepath.Join(dir, "f")
	writeFile(t, src, 1<<20, 1)
	f, _ := os.Open(src)
	d.SendFile(ctx, "f", f)
	go d.Sync(ctx) // makes the donor flush a segment, which starts the joiner's filters
	var pids []int
	for i := 0; i < 100 && len(pids) < 2; i++ {
		time.Sleep(50 * time.Millisecond)
		pids = readPids(pidfile)
	}
	if len(pids) < 2 {
		t.Fatalf("filters did not start: %v", pids)
	}
	j.Abort(errors.New("test abort"))
	<-served
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("filter process %d survived the session", pid)
		}
	}
	d.Close()
}

func readPids(path string) []int {
	b, _ := os.ReadFile(path)
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		var n int
		for _, c := range f {
			n = n*10 + int(c-'0')
		}
		pids = append(pids, n)
	}
	return pids
}

var _ = context.Background

// Callers classify errors into exit codes: the causes must unwrap.
func TestErrorsUnwrap(t *testing.T) {
	ctx := testCtx(t)
	l, _ := Listen(ctx, Address{Host: "127.0.0.1"}, Options{InitialTimeout: 50 * time.Millisecond})
	_, err := l.Accept(ctx)
	l.Close()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("initial timeout %v does not unwrap to os.ErrDeadlineExceeded", err)
	}
	busy, _ := Listen(ctx, Address{Host: "127.0.0.1"}, Options{})
	defer busy.Close()
	_, err = Listen(ctx, busy.Addr(), Options{})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("port in use: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_, err = Dial(sctx, Address{Host: "127.0.0.1", Port: l.Addr().Port}, "x", Options{})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("refused: %v", err)
	}
	c := makeCerts(t)
	_, _, jerr, derr := tryPair(t, "127.0.0.1", Options{TLS: TLS{Mode: TLSVerifyCA, Cert: c.joinerCert, Key: c.joinerKey, CA: c.ca}},
		Options{TLS: TLS{Mode: TLSVerifyCA, Cert: c.rogueCert, Key: c.rogueKey, CA: c.ca}})
	if !errors.Is(derr, ErrTLS) || !errors.Is(jerr, ErrTLS) {
		t.Errorf("TLS refusals do not match ErrTLS: donor %v; joiner %v", derr, jerr)
	}
	var cv *tls.CertificateVerificationError
	if !errors.As(jerr, &cv) {
		t.Errorf("joiner's TLS refusal %v does not unwrap to tls.CertificateVerificationError", jerr)
	}
	_, _, jerr, derr = tryPair(t, "127.0.0.1", Options{TLS: TLS{Mode: TLSVerifyCA, Cert: c.joinerCert, Key: c.joinerKey, CA: c.ca}}, Options{})
	if !errors.Is(derr, ErrTLS) || !errors.Is(jerr, ErrTLS) {
		t.Errorf("plain donor to a TLS joiner does not match ErrTLS: donor %v; joiner %v", derr, jerr)
	}
}

// A broken filter names itself on the side where it runs.
func TestFilterFails(t *testing.T) {
	flushing, flushOnce := make(chan struct{}), sync.Once{}
	for _, tc := range []struct {
		name       string
		jo, do     Options
		who, wants string
	}{
		{"compressor missing", Options{Decompressor: "gzip -dc"}, Options{Compressor: "no-such-compressor-xyz"}, "donor", "no-such-compressor-xyz"},
		{"decompressor fails", Options{Decompressor: "echo bad >&2; exit 3"}, Options{Compressor: "gzip -c"}, "joiner", "exit status 3: bad"},
		// The donor flushes its compressor into a data stream the joiner
		// has reset, before its control reader has taken in the joiner's
		// account (seen once on a loaded machine): the donor must still
		// report the joiner's reason, not the reset.
		{"wrong decompressor", Options{Decompressor: "cat", hook: func(point string, _ *Session) {
			if point == "serveConn" {
				<-flushing // the donor has sent all but its compressor's last block
			}
		}}, Options{Compressor: "gzip -c", hook: func(point string, _ *Session) {
			switch point {
			case "endSegment":
				flushOnce.Do(func() { close(flushing) })
				time.Sleep(300 * time.Millisecond) // the joiner has failed and reset the streams
			case "peerError":
				time.Sleep(time.Second) // its account comes in after the flush has failed
			}
		}}, "joiner", "corrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			j, d := pair(t, "127.0.0.1", tc.jo, tc.do)
			sink, _ := OpenSink(t.TempDir(), SinkOptions{NoSync: true})
			defer sink.Close()
			served := make(chan error, 1)
			go func() { _, err := j.Serve(ctx, sink); served <- err }()
			src := filepath.Join(t.TempDir(), "f")
			writeFile(t, src, 1<<20, 1)
			f, _ := os.Open(src)
			d.SendFile(ctx, "f", f)
			_, derr := d.Finish(ctx)
			jerr := <-served
			if tc.who == "donor" {
				wantErr(t, "donor", derr, tc.wants)
				wantErr(t, "joiner", jerr, "donor 127.0.0.1", tc.wants)
			} else {
				wantErr(t, "joiner", jerr, tc.wants)
				wantErr(t, "donor", derr, "joiner 127.0.0.1", tc.wants)
			}
		})
	}
}
