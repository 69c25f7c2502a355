package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority made by a test, to sign certificates for
// SST TLS and peer-tls, and revocation lists.
type CA struct {
	File string // its certificate, PEM: what [sst] tca names
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA called name and writes its certificate to dir/name.pem.
func NewCA(dir, name string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new CA key: %w", err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("new CA %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new CA %s: %w", name, err)
	}
	ca := &CA{File: filepath.Join(dir, name+".pem"), cert: cert, key: key}
	if err := writePEM(ca.File, "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// Issue signs a certificate called name for ips (127.0.0.1 when none) and
// localhost, good for both ends of a mutual TLS connection, and writes it
// to dir/name-cert.pem and its key to dir/name-key.pem (mode 0600).
func (ca *CA) Issue(dir, name string, ips ...string) (cert, key string, err error) {
	if len(ips) == 0 {
		ips = []string{"127.0.0.1"}
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("issue %s: %w", name, err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	for _, ip := range ips {
		p := net.ParseIP(ip)
		if p == nil {
			return "", "", fmt.Errorf("issue %s: bad IP %q", name, ip)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, p)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		return "", "", fmt.Errorf("issue %s: %w", name, err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return "", "", fmt.Errorf("issue %s: %w", name, err)
	}
	cert, key = filepath.Join(dir, name+"-cert.pem"), filepath.Join(dir, name+"-key.pem")
	if err := writePEM(cert, "CERTIFICATE", der, 0o644); err != nil {
		return "", "", err
	}
	if err := writePEM(key, "EC PRIVATE KEY", kb, 0o600); err != nil {
		return "", "", err
	}
	return cert, key, nil
}

// Revoke writes dir/name, a PEM revocation list by ca naming the
// certificate in the PEM file cert.
func (ca *CA) Revoke(dir, name, cert string) (string, error) {
	b, err := os.ReadFile(cert)
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", fmt.Errorf("revoke: %s holds no PEM", cert)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", fmt.Errorf("revoke %s: %w", cert, err)
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: c.SerialNumber, RevocationTime: time.Now()}},
	}, ca.cert, ca.key)
	if err != nil {
		return "", fmt.Errorf("revoke %s: %w", cert, err)
	}
	p := filepath.Join(dir, name)
	return p, writePEM(p, "X509 CRL", der, 0o644)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// MustCA is NewCA that stops the test on an error.
func MustCA(t testing.TB, dir, name string) *CA {
	t.Helper()
	ca, err := NewCA(dir, name)
	Must(t, err)
	return ca
}

// MustIssue is Issue that stops the test on an error.
func (ca *CA) MustIssue(t testing.TB, dir, name string, ips ...string) (cert, key string) {
	t.Helper()
	cert, key, err := ca.Issue(dir, name, ips...)
	Must(t, err)
	return cert, key
}

// MustRevoke is Revoke that stops the test on an error.
func (ca *CA) MustRevoke(t testing.TB, dir, name, cert string) string {
	t.Helper()
	p, err := ca.Revoke(dir, name, cert)
	Must(t, err)
	return p
}
