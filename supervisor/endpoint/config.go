package endpoint

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/galera-supervisor/galera-supervisor/schema"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// Config is the endpoint's configuration, from [galera-supervisor] (and
// [sst] for its certificates, the peers' own).
type Config struct {
	// Address is http-address, host:port; "" leaves the endpoint off.
	Address string
	// AvailableWhenDonor (available-when-donor, default off) lets a
	// Donor/Desynced node (wsrep_local_state 2) answer 200 at /, as
	// clustercheck's available_when_donor.
	AvailableWhenDonor bool
	// AvailableWhenReadonly (available-when-readonly, default on); off
	// makes a read_only node answer 503 at /.
	AvailableWhenReadonly bool
	// TLS is set by http-tls = on: the [sst] tcert and tkey; with
	// http-verify-client = on a client must present a certificate that
	// [sst] tca signed.
	TLS *tls.Config
}

// ConfigFrom reads the endpoint's options: gs is the [galera-supervisor]
// group, sst the [sst] group. Values are parsed by package schema; errors
// name the option.
func ConfigFrom(gs, sst quorum.Lookup) (*Config, error) {
	c := &Config{}
	bad := func(name, v, format string, args ...any) error {
		return &quorum.OptionError{Option: name, Value: v, Msg: fmt.Sprintf(format, args...)}
	}
	v := schema.Values{Group: schema.Supervisor, Look: schema.Lookup(gs)}
	valueErr := func(err error) error {
		if ve, ok := err.(*schema.ValueError); ok {
			return &quorum.OptionError{Option: ve.Option, Value: ve.Value, Msg: ve.Msg}
		}
		return err
	}
	addr, _, err := v.String("http-address")
	if err != nil {
		return nil, valueErr(err)
	}
	c.Address = addr
	var useTLS, verify bool
	for _, o := range []struct {
		name string
		dst  *bool
	}{
		{"available-when-donor", &c.AvailableWhenDonor},
		{"available-when-readonly", &c.AvailableWhenReadonly},
		{"http-tls", &useTLS},
		{"http-verify-client", &verify},
	} {
		if *o.dst, _, err = v.Bool(o.name); err != nil {
			return nil, valueErr(err)
		}
	}
	if verify && !useTLS {
		return nil, bad("http-verify-client", "on", "needs http-tls = on")
	}
	if useTLS {
		get := func(names ...string) string {
			for _, n := range names {
				if v, ok := sst(n); ok && v != "" {
					return v
				}
			}
			return ""
		}
		cert, key, ca := get("tcert", "ssl-cert"), get("tkey", "ssl-key"), ""
		if verify {
			ca = get("tca", "ssl-ca")
		}
		cfg, err := serverTLS(cert, key, ca, verify)
		if err != nil {
			return nil, bad("http-tls", "on", "%v", err)
		}
		c.TLS = cfg
	}
	return c, nil
}

// Enabled reports whether the endpoint listens.
func (c *Config) Enabled() bool { return c != nil && c.Address != "" }

func serverTLS(cert, key, ca string, verify bool) (*tls.Config, error) {
	if cert == "" {
		return nil, fmt.Errorf("needs a certificate ([sst] tcert)")
	}
	if key == "" {
		key = cert
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("[sst] tcert=%s tkey=%s: %w", cert, key, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if !verify {
		return cfg, nil
	}
	if ca == "" {
		return nil, fmt.Errorf("http-verify-client needs a CA ([sst] tca)")
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("[sst] tca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("[sst] tca=%s: no PEM certificate found", ca)
	}
	cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	return cfg, nil
}
