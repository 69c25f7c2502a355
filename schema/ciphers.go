package schema

import (
	"crypto/tls"
	"strings"
)

// openSSLSuites maps OpenSSL's names of the TLS 1.2 suites Go implements
// (openssl ciphers -v) to Go's: [sst] ssl-cipher is written for OpenSSL.
var openSSLSuites = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
}

// Ciphers is [sst] ssl-cipher read for Go's TLS: the TLS 1.2 suites it
// names, in its order, and the entries that mean nothing here (OpenSSL's
// keywords such as HIGH or !aNULL, suites Go does not implement, TLS 1.3
// suites, which are always on). TLS 1.3, when both sides have it, is
// negotiated whatever the list says, as with OpenSSL.
type Ciphers struct {
	Suites  []uint16
	Ignored []string
}

// errNoSuite is why the native methods refuse a cipher list that names no
// suite they implement: TLS 1.2 would have no cipher to agree on.
const errNoSuite = "names no TLS 1.2 suite native methods implement (OpenSSL names such as ECDHE-RSA-AES256-GCM-SHA384, ECDHE-ECDSA-CHACHA20-POLY1305)"

// parseCiphers reads an OpenSSL cipher list (entries separated by ':',
// ',' or spaces); any list parses, the stock scripts hand it to OpenSSL.
func parseCiphers(v string) (Ciphers, error) {
	var c Ciphers
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		if id, ok := openSSLSuites[strings.ToUpper(f)]; ok {
			c.Suites = append(c.Suites, id)
			continue
		}
		c.Ignored = append(c.Ignored, f)
	}
	return c, nil
}
