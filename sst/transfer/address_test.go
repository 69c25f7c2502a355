package transfer

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in         string
		host       string
		port       int
		path       string
		str        string
		errContain string
	}{
		{in: "127.0.0.1", host: "127.0.0.1", port: 4444, str: "127.0.0.1:4444"},
		{in: "127.0.0.1:24444", host: "127.0.0.1", port: 24444, str: "127.0.0.1:24444"},
		{in: "127.0.0.1:24444/rsync_sst", host: "127.0.0.1", port: 24444, path: "rsync_sst", str: "127.0.0.1:24444/rsync_sst"},
		{in: "10.0.0.5/xtrabackup_sst//1", host: "10.0.0.5", port: 4444, path: "xtrabackup_sst//1", str: "10.0.0.5:4444/xtrabackup_sst//1"},
		{in: "[::1]", host: "::1", port: 4444, str: "[::1]:4444"},
		{in: "[::1]:4445/native_copy/abc", host: "::1", port: 4445, path: "native_copy/abc", str: "[::1]:4445/native_copy/abc"},
		{in: "[fe80::1%eth0]:4444", host: "fe80::1%eth0", port: 4444, str: "[fe80::1%eth0]:4444"},
		{in: "fd00::5", host: "fd00::5", port: 4444, str: "[fd00::5]:4444"},
		{in: "fd00::5/x", host: "fd00::5", port: 4444, path: "x", str: "[fd00::5]:4444/x"},
		{in: "node2.example.com:4444", host: "node2.example.com", port: 4444, str: "node2.example.com:4444"},
		{in: "galera_node-2", host: "galera_node-2", port: 4444, str: "galera_node-2:4444"},
		{in: "localhost:0", host: "localhost", port: 0, str: "localhost:0"},
		{in: "host:65535", host: "host", port: 65535, str: "host:65535"},
		{in: "", errContain: "empty"},
		{in: "host:", errContain: "empty port"},
		{in: "host:65536", errContain: "bad port"},
		{in: "host:+1", errContain: "bad port"},
		{in: "host:x1", errContain: "bad port"},
		{in: "[::1", errContain: "missing ']'"},
		{in: "[::1]x", errContain: "unexpected"},
		{in: "[::1]:", errContain: "empty port"},
		{in: "[127.0.0.1]:4444", errContain: "not an IPv6"},
		{in: "fd00::5:4444:x", errContain: "brackets"},
		{in: "::%]", errContain: "brackets"}, // found by FuzzParseAddress: the zone swallowed a ']'
		{in: "[fe80::1%a:b]:1", errContain: "not an IPv6"},
		{in: "ho st", errContain: "invalid character"},
		{in: "-host", errContain: "bad host name"},
		{in: "a..b", errContain: "bad host name"},
		{in: ":4444", errContain: "empty host"},
		{in: "user@host", errContain: "bad host name"},
		{in: "/path", errContain: "empty host"},
		{in: strings.Repeat("a", 64), errContain: "bad host name"},
	} {
		a, err := ParseAddress(tc.in)
		if tc.errContain != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errContain) {
				t.Errorf("ParseAddress(%q) = %+v, %v; want error containing %q", tc.in, a, err, tc.errContain)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAddress(%q): %v", tc.in, err)
			continue
		}
		if a.Host != tc.host || a.Port != tc.port || a.Path != tc.path || a.String() != tc.str {
			t.Errorf("ParseAddress(%q) = %+v (%s), want %s %d %q (%s)", tc.in, a, a, tc.host, tc.port, tc.path, tc.str)
		}
	}
	a, _ := ParseAddress("h/xtrabackup_sst//1")
	if s := a.Segments(); len(s) != 3 || s[0] != "xtrabackup_sst" || s[1] != "" || s[2] != "1" {
		t.Errorf("Segments = %q", s)
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"127.0.0.1:4444/x", "[::1]:1/a/b", "host", "fd00::1", "[", "a:b:c", "h:99999", "x/%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		if a.Port < 0 || a.Port > 65535 || a.Host == "" {
			t.Fatalf("ParseAddress(%q) = %+v", s, a)
		}
		// What we print after "ready" parses back to the same address.
		b, err := ParseAddress(a.String())
		if err != nil || b != a {
			t.Fatalf("round trip %q -> %q -> %+v, %v", s, a.String(), b, err)
		}
	})
}

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestOptionsFrom(t *testing.T) {
	c := makeCerts(t)
	o, err := OptionsFrom(lookup(map[string]string{
		"rlimit": "10M", "sst-initial-timeout": "0", "compressor": "lz4 -z", "decompressor": "lz4 -d",
		"sockopt": ",keepalive,keepidle=7,nodelay,pf=ip6,retry=3", "transfer-streams": "3", "transfer-chunk-size": "256k",
		"encrypt": "4", "tcert": c.joinerCert, "tkey": c.joinerKey, "tca": c.ca, "transfer-sync": "0",
	}), Joiner)
	if err != nil {
		t.Fatal(err)
	}
	if o.RateLimit != 10<<20 || o.InitialTimeout >= 0 || o.Streams != 3 || o.ChunkSize != 256<<10 || !o.NoSync ||
		o.SockOpt.KeepIdle != 7*time.Second || !o.SockOpt.NoDelay || len(o.SockOpt.Ignored) != 2 ||
		o.TLS.Mode != TLSVerifyCA || o.TLS.CertOption != "tcert" || !isLZ4(o.Compressor) || !isLZ4(o.Decompressor) {
		t.Fatalf("options %+v", o)
	}
	// ssl-cipher: OpenSSL's names of the TLS 1.2 suites, the rest logged.
	o, err = OptionsFrom(lookup(map[string]string{"encrypt": "3", "tcert": c.joinerCert, "tkey": c.joinerKey,
		"ssl-cipher": "ECDHE-ECDSA-AES256-GCM-SHA384:HIGH:!aNULL:ecdhe-ecdsa-chacha20-poly1305", "ssl-crl": c.donorCRL}), Joiner)
	if err != nil || !slices.Equal(o.TLS.Ciphers, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}) ||
		!slices.Equal(o.TLS.CipherIgnored, []string{"HIGH", "!aNULL"}) || o.TLS.CRL != c.donorCRL {
		t.Fatalf("ssl-cipher, ssl-crl: %+v %v", o.TLS, err)
	}
	// ssl-* fallbacks, role-specific first; tca may be a directory.
	o, err = OptionsFrom(lookup(map[string]string{
		"ssl-mode": "VERIFY_IDENTITY", "ssl-cert": "/nonexistent", "ssl-client-cert": c.donorCert, "ssl-key": c.donorKey, "ssl-ca": c.dir,
	}), Donor)
	if err != nil {
		t.Fatal(err)
	}
	if o.TLS.Mode != TLSVerifyIdentity || o.TLS.Cert != c.donorCert || o.TLS.CAOption != "ssl-ca" {
		t.Fatalf("TLS %+v", o.TLS)
	}
	if o.InitialTimeout != 0 {
		t.Fatalf("default initial timeout %v", o.InitialTimeout)
	}
	for _, tc := range []struct {
		opts map[string]string
		want string
	}{
		{map[string]string{"encrypt": "1"}, "encrypt=1: native methods encrypt with TLS only"},
		{map[string]string{"encrypt": "5"}, "[sst] encrypt=5"},
		{map[string]string{"encrypt": "3"}, "needs a certificate"},
		{map[string]string{"encrypt": "3", "tcert": c.joinerCert}, "needs a key"},
		{map[string]string{"encrypt": "4", "tcert": c.joinerCert, "tkey": c.joinerKey}, "needs a CA"},
		{map[string]string{"encrypt": "2", "tcert": c.joinerCert}, "needs a CA"},
		{map[string]string{"ssl-mode": "VERIFY_CA", "ssl-cert": c.joinerCert, "ssl-key": c.joinerKey}, "ssl-mode=VERIFY_CA needs a CA"},
		{map[string]string{"ssl-mode": "PREFERRED"}, "[sst] ssl-mode=PREFERRED"},
		{map[string]string{"encrypt": "3", "tcert": "/nonexistent.pem", "tkey": c.joinerKey}, "[sst] tcert"},
		{map[string]string{"encrypt": "3", "tcert": c.joinerCert, "tkey": c.donorKey}, "private key does not match"},
		{map[string]string{"encrypt": "4", "tcert": c.joinerCert, "tkey": c.joinerKey, "tca": c.joinerKey}, "no PEM certificate"},
		{map[string]string{"rlimit": "fast"}, "[sst] rlimit=fast"},
		// MDEV-28233: REQUIRED with a missing certificate or key refuses,
		// naming it, rather than fall back to cleartext.
		{map[string]string{"ssl-mode": "REQUIRED", "ssl-cert": "/nonexistent.pem", "ssl-key": c.joinerKey}, "[sst] ssl-cert: open /nonexistent.pem: no such file"},
		{map[string]string{"ssl-mode": "REQUIRED", "ssl-cert": c.joinerCert, "ssl-key": "/nonexistent.key"}, "[sst] ssl-key: open /nonexistent.key: no such file"},
		{map[string]string{"ssl-mode": "REQUIRED", "ssl-cert": c.joinerCert}, "ssl-mode=REQUIRED needs a key"},
		{map[string]string{"encrypt": "3", "tcert": c.joinerCert, "tkey": c.joinerKey, "ssl-cipher": "HIGH:!aNULL"}, "[sst] ssl-cipher=HIGH:!aNULL: names no TLS 1.2 suite"},
		{map[string]string{"encrypt": "3", "tcert": c.joinerCert, "tkey": c.joinerKey, "ssl-crl": c.joinerKey}, "[sst] ssl-crl: " + c.joinerKey},
		{map[string]string{"sst-initial-timeout": "-5"}, "[sst] sst-initial-timeout"},
		{map[string]string{"transfer-streams": "0"}, "[sst] transfer-streams"},
		{map[string]string{"transfer-chunk-size": "100M"}, "[sst] transfer-chunk-size"},
		{map[string]string{"sockopt": "keepidle=x"}, "[sst] sockopt"},
		{map[string]string{"transfer-sync": "maybe"}, "[sst] transfer-sync"},
	} {
		_, err := OptionsFrom(lookup(tc.opts), Joiner)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OptionsFrom(%v) = %v, want an error containing %q", tc.opts, err, tc.want)
		}
	}
	// encrypt=0 with files set stays plain, as in the stock scripts.
	o, err = OptionsFrom(lookup(map[string]string{"tcert": c.joinerCert, "progress": "none", "rlimit": "1M"}), Joiner)
	if err != nil || o.TLS.Mode != TLSOff || o.RateLimit != 0 {
		t.Fatalf("%+v %v", o, err)
	}
	// encrypt=2: the key may live in tcert.
	both := c.dir + "/both.pem"
	writeBoth(t, both, c.joinerCert, c.joinerKey)
	if _, err := OptionsFrom(lookup(map[string]string{"encrypt": "2", "tcert": both, "tca": c.ca}), Joiner); err != nil {
		t.Fatal(err)
	}
}

func TestIsLZ4(t *testing.T) {
	for cmd, want := range map[string]bool{"lz4": true, "lz4 -z": true, "lz4 -d -q": true, "/usr/bin/lz4 -1": true, "lz4c": true,
		"": false, "zstd": false, "lz4 -d | cat": false, "pigz": false, "lz4 file": false, "xlz4": false} {
		if isLZ4(cmd) != want {
			t.Errorf("isLZ4(%q) != %v", cmd, want)
		}
	}
}
