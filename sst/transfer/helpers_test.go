package transfer

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io/fs"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pair sets up a joiner and a donor session on loopback.
func pair(t testing.TB, host string, jo, do Options) (joiner, donor *Session) {
	t.Helper()
	j, d, jerr, derr := tryPair(t, host, jo, do)
	if jerr != nil || derr != nil {
		t.Fatalf("session: joiner: %v; donor: %v", jerr, derr)
	}
	return j, d
}

func tryPair(t testing.TB, host string, jo, do Options) (joiner, donor *Session, jerr, derr error) {
	t.Helper()
	ctx := testCtx(t)
	if jo.Log == nil {
		jo.Log = logtest.New(t)
	}
	if do.Log == nil {
		do.Log = logtest.New(t)
	}
	l, err := Listen(ctx, Address{Host: host, Port: 0}, jo)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	type res struct {
		s   *Session
		err error
	}
	dc := make(chan res, 1)
	go func() {
		s, err := Dial(ctx, l.Addr(), l.Secret(), do)
		dc <- res{s, err}
	}()
	joiner, jerr = l.Accept(ctx)
	if jerr != nil {
		l.Close() // unblocks a donor waiting in its handshake
	}
	r := <-dc
	donor, derr = r.s, r.err
	if joiner != nil {
		t.Cleanup(func() { joiner.Close() })
	}
	if donor != nil {
		t.Cleanup(func() { donor.Close() })
	}
	return
}

func writeFile(t testing.TB, path string, size int, seed uint64) {
	t.Helper()
	r := mrand.New(mrand.NewPCG(seed, seed))
	b := make([]byte, size)
	for i := range b {
		// Compressible but not trivial, like InnoDB pages.
		if i%64 < 40 {
			b[i] = byte(r.IntN(16))
		} else {
			b[i] = byte(r.Uint32())
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

// makeTree builds a small datadir-like tree; chunk-boundary sizes matter.
func makeTree(t testing.TB, dir string, chunk int) {
	t.Helper()
	sizes := map[string]int{
		"ibdata1":            3*chunk + 17,
		"ib_logfile0":        chunk,
		"mysql/user.MYD":     1000,
		"mysql/db.frm":       chunk + 1,
		"bench/t.ibd":        9*chunk - 1,
		"bench/empty.ibd":    0,
		"a/b/c/deep.bin":     123,
		"aria_log_control":   52,
		"bench/odd name.txt": 5,
	}
	i := uint64(1)
	for name, size := range sizes {
		writeFile(t, filepath.Join(dir, name), size, i)
		i++
	}
	if err := os.MkdirAll(filepath.Join(dir, "emptydir"), 0o700); err != nil {
		t.Fatal(err)
	}
}

// sendTree sends every directory and file under dir.
func sendTree(ctx context.Context, t testing.TB, s *Session, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return s.SendDir(ctx, rel, info.Mode())
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return s.SendSymlink(ctx, rel, target)
		default:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			total += info.Size()
			return s.SendFile(ctx, rel, f)
		}
	})
	if err != nil {
		t.Fatalf("send tree: %v", err)
	}
	return total
}

func compareTrees(t testing.TB, want, got string) {
	t.Helper()
	n := 0
	filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(want, p)
		q := filepath.Join(got, rel)
		wi, _ := os.Lstat(p)
		gi, err := os.Lstat(q)
		if err != nil {
			t.Errorf("missing %s: %v", rel, err)
			return nil
		}
		if wi.Mode().Type() != gi.Mode().Type() {
			t.Errorf("%s: type %v, want %v", rel, gi.Mode().Type(), wi.Mode().Type())
			return nil
		}
		if rel != "." && wi.Mode().Perm() != gi.Mode().Perm() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode().Perm(), wi.Mode().Perm())
		}
		if wi.Mode().IsRegular() {
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(q)
			if !bytes.Equal(a, b) {
				t.Errorf("%s: content differs (%d vs %d bytes)", rel, len(b), len(a))
			}
			n++
		}
		return nil
	})
	if n == 0 {
		t.Fatal("no files compared")
	}
}

// certs is a test PKI: a CA with a joiner and a donor certificate, and a
// rogue CA with its own client certificate.
type certs struct {
	dir                                      string
	ca, joinerCert, joinerKey                string
	donorCert, donorKey, rogueCert, rogueKey string
	rogueCA                                  string
	// Revocation lists, signed by the CA, of the donor's and the joiner's
	// certificates; and one of the joiner's signed by the rogue CA.
	donorCRL, joinerCRL, rogueCRL string
}

func makeCerts(t testing.TB) *certs {
	t.Helper()
	dir := t.TempDir()
	c := &certs{dir: dir}
	caKey, caCert, caPEM := newCA(t, "test CA")
	c.ca = writePEM(t, dir, "ca.pem", caPEM)
	c.joinerCert, c.joinerKey = leaf(t, dir, "joiner", caCert, caKey, true)
	c.donorCert, c.donorKey = leaf(t, dir, "donor", caCert, caKey, false)
	rKey, rCert, rPEM := newCA(t, "rogue CA")
	c.rogueCA = writePEM(t, dir, "rogue-ca.pem", rPEM)
	c.rogueCert, c.rogueKey = leaf(t, dir, "rogue", rCert, rKey, false)
	c.donorCRL = revoke(t, dir, "donor.crl", caCert, caKey, c.donorCert)
	c.joinerCRL = revoke(t, dir, "joiner.crl", caCert, caKey, c.joinerCert)
	c.rogueCRL = revoke(t, dir, "rogue.crl", rCert, rKey, c.joinerCert)
	return c
}

// revoke writes a PEM revocation list by ca naming the certificate at cert.
func revoke(t testing.TB, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cert string) string {
	b, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: c.SerialNumber, RevocationTime: time.Now()}},
	}, ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
}

var serial int64

func newCA(t testing.TB, cn string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func leaf(t testing.TB, dir, cn string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, server bool) (string, string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return writePEM(t, dir, cn+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		writePEM(t, dir, cn+".key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func writePEM(t testing.TB, dir, name string, b []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeBoth(t testing.TB, path, cert, key string) {
	a, _ := os.ReadFile(cert)
	b, _ := os.ReadFile(key)
	if err := os.WriteFile(path, append(a, b...), 0o600); err != nil {
		t.Fatal(err)
	}
}
