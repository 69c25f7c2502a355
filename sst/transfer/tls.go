package transfer

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/galera-supervisor/galera-supervisor/schema"
)

// TLSMode is how a session is protected.
type TLSMode int

// TLS modes, from the stock encrypt and ssl-mode options.
const (
	TLSOff            TLSMode = iota // plain TCP
	TLSRequired                      // encrypt; verify the peer when a CA is given (encrypt=3, ssl-mode=REQUIRED)
	TLSVerifyCA                      // CA mandatory; both sides verify the peer's chain (encrypt=2/4, VERIFY_CA)
	TLSVerifyIdentity                // as VerifyCA, and the donor checks the joiner's name against the address host
)

func (m TLSMode) String() string {
	switch m {
	case TLSOff:
		return "off"
	case TLSRequired:
		return "required"
	case TLSVerifyCA:
		return "verify-ca"
	case TLSVerifyIdentity:
		return "verify-identity"
	}
	return "TLSMode(" + strconv.Itoa(int(m)) + ")"
}

// TLS holds the certificate files of a session. When a CA is present both
// sides present their certificate and verify the peer's against it.
type TLS struct {
	Mode TLSMode
	Cert string // PEM certificate (chain); may hold the key too, as stock tcert does
	Key  string // PEM private key; empty when Cert holds it
	CA   string // PEM file, or a directory of PEM files (a CA path)

	// Names of the options the files came from, for errors.
	CertOption, KeyOption, CAOption string

	// Ciphers are the TLS 1.2 suites [sst] ssl-cipher names (nil: Go's
	// defaults); CipherIgnored its entries that mean nothing here.
	Ciphers       []uint16
	CipherIgnored []string
	// CRL is a revocation list, PEM or DER, or a directory of them
	// (ssl-crl, ssl-crlpath): a peer certificate it names is refused.
	CRL, CRLOption string
}

func tlsFrom(v schema.Values, role Role) (TLS, error) {
	var t TLS
	if err := v.CheckNative("encrypt"); err != nil {
		return t, err // encrypt=1
	}
	n, _, err := v.Int("encrypt")
	if err != nil {
		return t, err
	}
	encrypt := int(n)
	mode, _, err := v.String("ssl-mode")
	if err != nil {
		return t, err
	}
	get := func(name string) (string, bool) {
		s, set, _ := v.String(name)
		return s, set
	}
	side := "server" // the joiner accepts, like a TLS server
	if role == Donor {
		side = "client"
	}
	first := func(names ...string) (string, string) {
		for _, n := range names {
			if v, ok := get(n); ok {
				return v, n
			}
		}
		return "", ""
	}
	t.Cert, t.CertOption = first("tcert", "ssl-"+side+"-cert", "ssl-cert")
	t.Key, t.KeyOption = first("tkey", "ssl-"+side+"-key", "ssl-key")
	t.CA, t.CAOption = first("tca", "tcapath", "ssl-"+side+"-ca", "ssl-"+side+"-capath", "ssl-ca", "ssl-capath")

	switch encrypt {
	case 2, 4:
		t.Mode = TLSVerifyCA
	case 3:
		t.Mode = TLSRequired
	}
	switch mode {
	case "REQUIRED":
		t.Mode = max(t.Mode, TLSRequired)
	case "VERIFY_CA":
		t.Mode = max(t.Mode, TLSVerifyCA)
	case "VERIFY_IDENTITY":
		t.Mode = TLSVerifyIdentity
	}
	if t.Mode == TLSOff {
		return t, nil
	}
	if err := v.CheckNative("ssl-cipher"); err != nil {
		return t, err // it names no suite we implement
	}
	c, set, _ := v.Ciphers("ssl-cipher")
	if set {
		t.Ciphers, t.CipherIgnored = c.Suites, c.Ignored
	}
	t.CRL, t.CRLOption = first("ssl-crl", "ssl-crlpath")
	why := "ssl-mode=" + mode
	if encrypt != 0 {
		why = "encrypt=" + strconv.Itoa(encrypt)
	}
	if t.Cert == "" {
		return t, fmt.Errorf("[sst] %s needs a certificate: set tcert (or ssl-cert)", why)
	}
	if t.Key == "" && encrypt != 2 {
		return t, fmt.Errorf("[sst] %s needs a key: set tkey (or ssl-key)", why)
	}
	if t.Mode >= TLSVerifyCA && t.CA == "" {
		return t, fmt.Errorf("[sst] %s needs a CA: set tca (or ssl-ca)", why)
	}
	if _, err := t.load(); err != nil {
		return t, err
	}
	return t, nil
}

type tlsFiles struct {
	cert    tls.Certificate
	pool    *x509.CertPool      // nil without a CA
	caCerts []*x509.Certificate // what pool holds, to check a CRL's signature
	revoked map[string]string   // serial number → the list that names it
}

func pemCerts(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return out
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil && blk.Type == "CERTIFICATE" {
			out = append(out, c)
		}
	}
}

func optName(n, def string) string {
	if n == "" {
		return def
	}
	return n
}

func (t *TLS) load() (*tlsFiles, error) {
	f, err := t.loadKeys()
	if err != nil || t.CRL == "" {
		return f, err
	}
	return f, f.loadCRL(t.CRL, optName(t.CRLOption, "ssl-crl"))
}

func (t *TLS) loadKeys() (*tlsFiles, error) {
	var f tlsFiles
	certOpt, keyOpt, caOpt := optName(t.CertOption, "tcert"), optName(t.KeyOption, "tkey"), optName(t.CAOption, "tca")
	if t.Cert == "" {
		// No certificate of our own: a joiner with a CA will refuse us,
		// which is what a test of that refusal needs.
		return t.loadCA(&f, caOpt)
	}
	keyFile := t.Key
	if keyFile == "" {
		keyFile = t.Cert
		keyOpt = certOpt
	}
	certPEM, err := os.ReadFile(t.Cert)
	if err != nil {
		return nil, fmt.Errorf("[sst] %s: %w", certOpt, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("[sst] %s: %w", keyOpt, err)
	}
	f.cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("[sst] %s=%s, %s=%s: %w", certOpt, t.Cert, keyOpt, keyFile, err)
	}
	return t.loadCA(&f, caOpt)
}

func (t *TLS) loadCA(f *tlsFiles, caOpt string) (*tlsFiles, error) {
	if t.CA == "" {
		return f, nil
	}
	f.pool = x509.NewCertPool()
	st, err := os.Stat(t.CA)
	if err != nil {
		return nil, fmt.Errorf("[sst] %s: %w", caOpt, err)
	}
	files := []string{t.CA}
	if st.IsDir() {
		ents, err := os.ReadDir(t.CA)
		if err != nil {
			return nil, fmt.Errorf("[sst] %s: %w", caOpt, err)
		}
		files = files[:0]
		for _, e := range ents {
			if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
				files = append(files, filepath.Join(t.CA, e.Name()))
			}
		}
	}
	n := 0
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			if st.IsDir() {
				continue
			}
			return nil, fmt.Errorf("[sst] %s: %w", caOpt, err)
		}
		if f.pool.AppendCertsFromPEM(b) {
			n++
			f.caCerts = append(f.caCerts, pemCerts(b)...)
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("[sst] %s=%s: no PEM certificate found", caOpt, t.CA)
	}
	return f, nil
}

// config builds the crypto/tls configuration of one side. host is the
// joiner's host from the address, checked only in TLSVerifyIdentity.
func (t *TLS) config(role Role, host string) (*tls.Config, error) {
	if t.Mode == TLSOff {
		return nil, nil
	}
	if t.Mode >= TLSVerifyCA && t.CA == "" {
		return nil, fmt.Errorf("TLS mode %s needs a CA (tca)", t.Mode)
	}
	f, err := t.load()
	if err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: t.Ciphers}
	if t.Cert != "" {
		c.Certificates = []tls.Certificate{f.cert}
		if role == Donor {
			// Present it even when the joiner's CA did not sign it, so the
			// joiner can say so instead of "no certificate".
			cert := f.cert
			c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		}
	} else if role == Joiner {
		return nil, fmt.Errorf("TLS mode %s needs a certificate (tcert) on the joiner", t.Mode)
	}
	if role == Joiner {
		if f.pool != nil {
			c.ClientAuth = tls.RequireAndVerifyClientCert
			c.ClientCAs = f.pool
		}
		if f.revoked != nil {
			c.VerifyConnection = func(cs tls.ConnectionState) error { return f.checkRevoked(cs.PeerCertificates, "donor") }
		}
		return c, nil
	}
	// The donor checks the chain itself: joiners are usually addressed by
	// IP, which their certificates rarely name (MDEV-9403), so the name is
	// only checked in verify-identity mode.
	c.InsecureSkipVerify = true
	if f.pool == nil {
		if f.revoked != nil {
			c.VerifyConnection = func(cs tls.ConnectionState) error { return f.checkRevoked(cs.PeerCertificates, "joiner") }
		}
		return c, nil
	}
	pool, checkName := f.pool, t.Mode == TLSVerifyIdentity
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("joiner presented no certificate")
		}
		opts := x509.VerifyOptions{Roots: pool, Intermediates: x509.NewCertPool()}
		for _, ic := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(ic)
		}
		if checkName {
			opts.DNSName = host
		}
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			return fmt.Errorf("joiner certificate %q: %w", cs.PeerCertificates[0].Subject.CommonName, err)
		}
		return f.checkRevoked(cs.PeerCertificates, "joiner")
	}
	return c, nil
}

// loadCRL reads the revocation lists at path, a file or a directory of
// them, PEM or DER. With a CA, each list must be signed by it.
func (f *tlsFiles) loadCRL(path, opt string) error {
	files := []string{path}
	if st, err := os.Stat(path); err != nil {
		return fmt.Errorf("[sst] %s: %w", opt, err)
	} else if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return fmt.Errorf("[sst] %s: %w", opt, err)
		}
		files = files[:0]
		for _, e := range ents {
			if !e.IsDir() {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	f.revoked = map[string]string{}
	lists := 0
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("[sst] %s: %w", opt, err)
		}
		if blk, _ := pem.Decode(b); blk != nil {
			b = blk.Bytes
		}
		crl, err := x509.ParseRevocationList(b)
		if err != nil && len(files) > 1 {
			continue // a directory may hold other files, as OpenSSL's does
		}
		if err != nil {
			return fmt.Errorf("[sst] %s: %s: %w", opt, name, err)
		}
		if err := f.signedByCA(crl); err != nil {
			return fmt.Errorf("[sst] %s: %s: %w", opt, name, err)
		}
		lists++
		for _, r := range crl.RevokedCertificateEntries {
			f.revoked[r.SerialNumber.String()] = name
		}
	}
	if lists == 0 {
		return fmt.Errorf("[sst] %s=%s: no revocation list found", opt, path)
	}
	return nil
}

// signedByCA checks crl's signature against the CA's certificates, when
// there is a CA.
func (f *tlsFiles) signedByCA(crl *x509.RevocationList) error {
	if f.pool == nil {
		return nil
	}
	for _, ca := range f.caCerts {
		if crl.CheckSignatureFrom(ca) == nil {
			return nil
		}
	}
	return errors.New("not signed by the CA (tca or ssl-ca)")
}

// checkRevoked refuses a peer whose certificate a revocation list names.
func (f *tlsFiles) checkRevoked(chain []*x509.Certificate, peer string) error {
	for _, c := range chain {
		if list, ok := f.revoked[c.SerialNumber.String()]; ok {
			return fmt.Errorf("%w: %s certificate %q (serial %s) is revoked by %s", ErrTLS, peer, c.Subject.CommonName, c.SerialNumber, list)
		}
	}
	return nil
}
