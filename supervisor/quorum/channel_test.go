package quorum

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
)

func serve(t *testing.T, auth Auth, st State) string {
	t.Helper()
	srv, err := Listen("127.0.0.1:0", auth, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv.Set(st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv.Addr().String()
}

var sample = State{ID: "10.0.0.1:4569", Phase: PhaseWaiting, UUID: clusterA, Seqno: 42, SafeToBootstrap: true,
	View: &View{MyUUID: g1, ViewID: vcreator, Seq: 3, Members: []string{g1, g2}}}

func TestQuerySecret(t *testing.T) {
	secret := Auth{Secret: []byte("0123456789abcdef-shared")}
	addr := serve(t, secret, sample)
	got, err := Query(context.Background(), addr, secret)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(sample)
	if !bytes.Equal(a, b) {
		t.Errorf("got %s\nwant %s", a, b)
	}
	_, err = Query(context.Background(), addr, Auth{Secret: []byte("another secret, 16+ bytes")})
	if !errors.Is(err, ErrAuth) {
		t.Errorf("wrong secret: err = %v, want ErrAuth", err)
	}
}

// TestQueryForgedServer: a server that does not know the secret cannot
// make a client accept its state.
func TestQueryForgedServer(t *testing.T) {
	// A listener that speaks the protocol, but cannot compute the mac.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		writeFrame(c, hello{V: protoVersion, Nonce: newNonce()})
		var a ask
		readFrame(c, &a)
		st, _ := json.Marshal(sample)
		writeFrame(c, reply{V: protoVersion, State: st, MAC: strings.Repeat("0", 64)})
	}()
	_, err = Query(context.Background(), ln.Addr().String(), Auth{Secret: []byte("0123456789abcdef-shared")})
	if !errors.Is(err, ErrAuth) {
		t.Errorf("forged answer: err = %v, want ErrAuth", err)
	}
}

// TestReplay: a recorded ask, replayed on a new connection, is refused,
// because the server's nonce differs.
func TestReplay(t *testing.T) {
	secret := []byte("0123456789abcdef-shared")
	addr := serve(t, Auth{Secret: secret}, sample)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var h hello
	if err := readFrame(c, &h); err != nil {
		t.Fatal(err)
	}
	nc := newNonce()
	recorded := ask{V: protoVersion, Nonce: nc, MAC: mac(secret, "ask", h.Nonce, nc)}
	writeFrame(c, recorded)
	var r reply
	if err := readFrame(c, &r); err != nil || r.Error != "" {
		t.Fatalf("first exchange: %v %q", err, r.Error)
	}
	c.Close()

	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := readFrame(c2, &h); err != nil {
		t.Fatal(err)
	}
	writeFrame(c2, recorded)
	r = reply{}
	if err := readFrame(c2, &r); err != nil {
		t.Fatal(err)
	}
	if r.Error != "authentication failed" || len(r.State) != 0 {
		t.Errorf("replayed ask answered: %+v", r)
	}
}

func TestQueryTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.MustCA(t, dir, "ca")
	certFile, keyFile := ca.MustIssue(t, dir, "node")
	auth := tlsAuth(t, certFile, keyFile, filepath.Join(dir, "ca.pem"))
	addr := serve(t, auth, sample)
	got, err := Query(context.Background(), addr, auth)
	if err != nil || got.Seqno != 42 {
		t.Fatalf("Query = %+v, %v", got, err)
	}

	// A certificate from another CA is refused.
	other := testutil.MustCA(t, dir, "other")
	oc, ok := other.MustIssue(t, dir, "intruder")
	if _, err := Query(context.Background(), addr, tlsAuth(t, oc, ok, filepath.Join(dir, "other.pem"))); err == nil {
		t.Error("a client of another CA was answered")
	}
	if _, _, err := NewTLS(certFile, keyFile, ""); err == nil || !strings.Contains(err.Error(), "CA") {
		t.Errorf("NewTLS without a CA: %v", err)
	}
}

// TestQueryTLSOtherCA: a node whose certificate another CA signed, the
// cluster's CA kept, is told its peer refused its certificate, and the
// peer's log names that certificate and the reason, not "no certificate".
func TestQueryTLSOtherCA(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.MustCA(t, dir, "ca")
	certFile, keyFile := ca.MustIssue(t, dir, "node")
	log := logtest.NewRecorder()
	srv, err := Listen("127.0.0.1:0", tlsAuth(t, certFile, keyFile, filepath.Join(dir, "ca.pem")), log.Logger())
	if err != nil {
		t.Fatal(err)
	}
	srv.Set(sample)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()

	other := testutil.MustCA(t, dir, "other")
	oc, ok := other.MustIssue(t, dir, "intruder")
	_, err = Query(ctx, srv.Addr().String(), tlsAuth(t, oc, ok, filepath.Join(dir, "ca.pem")))
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "refused this node's certificate") {
		t.Errorf("Query with a certificate of another CA: %v, want the peer's refusal of it", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	// As the supervisor's text log shows it.
	got := strings.Join(log.Lines(), "\n")
	for _, want := range []string{"peer refused peer=127.0.0.1:", `\"intruder\" (issuer \"other\")`, "unknown authority"} {
		if !strings.Contains(got, want) {
			t.Errorf("server log lacks %q:\n%s", want, got)
		}
	}
}

func tlsAuth(t *testing.T, cert, key, ca string) Auth {
	t.Helper()
	s, c, err := NewTLS(cert, key, ca)
	if err != nil {
		t.Fatal(err)
	}
	return Auth{ServerTLS: s, ClientTLS: c}
}

func TestListenNeedsAuth(t *testing.T) {
	if _, err := Listen("127.0.0.1:0", Auth{}, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Error("Listen without authentication succeeded")
	}
}

func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	st, _ := json.Marshal(sample)
	writeFrame(&b, reply{V: 1, State: st, MAC: "ab"})
	f.Add(b.Bytes())
	donor := sample
	donor.Donation = &Donation{Method: "mariabackup", Joiner: "10.0.0.2:4444/xtrabackup_sst//1", Sent: 1, Total: 2}
	st, _ = json.Marshal(donor)
	b.Reset()
	writeFrame(&b, reply{V: 1, State: st})
	f.Add(b.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r reply
		if err := readFrame(bytes.NewReader(data), &r); err != nil {
			return
		}
		if len(r.State) == 0 {
			return
		}
		s, err := DecodeState(r.State)
		if err != nil {
			return
		}
		// What decodes must re-encode and decode to the same.
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := DecodeState(again)
		if err != nil {
			t.Fatalf("re-decode %s: %v", again, err)
		}
		a2, _ := json.Marshal(s2)
		if !bytes.Equal(again, a2) {
			t.Fatalf("round trip differs:\n%s\n%s", again, a2)
		}
	})
}

// TestQueryDonation: a donor's SST reaches the joiner's supervisor whole,
// and a state with a nonsensical one is refused.
func TestQueryDonation(t *testing.T) {
	secret := Auth{Secret: []byte("0123456789abcdef-shared")}
	donor := sample
	donor.Phase, donor.Primary = PhaseSynced, true
	donor.Donation = &Donation{Method: "rsync", Joiner: "10.0.0.2:4444/rsync_sst", Sent: 123 << 20, Total: 2 << 30}
	got, err := Query(context.Background(), serve(t, secret, donor), secret)
	if err != nil {
		t.Fatal(err)
	}
	if got.Donation == nil || *got.Donation != *donor.Donation {
		t.Fatalf("donation %+v, want %+v", got.Donation, donor.Donation)
	}
	for _, bad := range []string{
		`{"id":"a","phase":"synced","seqno":1,"donation":{"method":"rsync","sent":-1}}`,
		`{"id":"a","phase":"synced","seqno":1,"donation":{"method":"","sent":1}}`,
	} {
		if _, err := DecodeState([]byte(bad)); err == nil {
			t.Errorf("DecodeState(%s) accepted", bad)
		}
	}
}
