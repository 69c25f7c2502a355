package quorum

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/galera-supervisor/galera-supervisor/schema"
)

// Defaults of the [galera-supervisor] options.
const (
	DefaultPort          = 4569
	DefaultBootstrapWait = 300 * time.Second // schema's default for bootstrap-wait
	// PollInterval is how often a waiting supervisor asks its peers.
	PollInterval = 250 * time.Millisecond
)

// Config is the coordination's configuration, from the [galera-supervisor]
// group (and [sst] for peer-tls, the server groups for defaults).
type Config struct {
	Listen        string   // peer-address: host:port to listen on
	ID            string   // this node's name among its peers
	Peers         []string // peers: the other supervisors, host:port
	Auth          Auth
	BootstrapWait time.Duration // bootstrap-wait
	AutoBootstrap bool          // auto-bootstrap
	// Weight is pc.weight from wsrep_provider_options, nil when not set.
	Weight *int
	// Why is set when the coordination is off: no peer authentication.
	Why string
}

// Enabled reports whether the node coordinates with its peers.
func (c *Config) Enabled() bool { return c.Auth.Configured() }

// OptionError is a bad [galera-supervisor] option; config check adds the
// file and line it is on.
type OptionError struct {
	Option, Value, Msg string
}

func (e *OptionError) Error() string {
	if e.Value == "" {
		return "[galera-supervisor] " + e.Option + ": " + e.Msg
	}
	return "[galera-supervisor] " + e.Option + "=" + e.Value + ": " + e.Msg
}

// Lookup reads an option of one group: its value and whether it is set.
type Lookup func(name string) (string, bool)

// ConfigFrom reads the options. gs is the [galera-supervisor] group,
// server the server groups, sst the [sst] group. Errors name the option.
func ConfigFrom(gs, server, sst Lookup) (*Config, error) {
	c := &Config{BootstrapWait: DefaultBootstrapWait}
	bad := func(name, v string, format string, args ...any) error {
		return &OptionError{Option: name, Value: v, Msg: fmt.Sprintf(format, args...)}
	}

	v := schema.Values{Group: schema.Supervisor, Look: schema.Lookup(gs)}
	if errs, _ := v.Problems(""); len(errs) > 0 {
		ve := errs[0].(*schema.ValueError)
		return nil, &OptionError{Option: ve.Option, Value: ve.Value, Msg: ve.Msg}
	}

	// peer-address, defaulting to wsrep_node_address's host.
	host, port := "", strconv.Itoa(DefaultPort)
	if a, ok, _ := v.String("peer-address"); ok {
		host, port, _ = net.SplitHostPort(a)
	} else if v, ok := server("wsrep-node-address"); ok && v != "" {
		host = hostOf(v)
	}
	c.Listen = net.JoinHostPort(host, port)
	c.ID = c.Listen
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		c.Listen = net.JoinHostPort("0.0.0.0", port)
		name, _ := os.Hostname()
		c.ID = net.JoinHostPort(name, port)
	}

	// peers, defaulting to wsrep_cluster_address's hosts at our port.
	if peers, ok, _ := v.List("peers"); ok {
		for _, p := range peers {
			if p == c.ID || p == c.Listen {
				continue // a peers list shared by all nodes names us too
			}
			c.Peers = append(c.Peers, p)
		}
	} else if v, ok := server("wsrep-cluster-address"); ok {
		addrs, _ := strings.CutPrefix(strings.TrimSpace(v), "gcomm://")
		addrs, _, _ = strings.Cut(addrs, "?")
		for _, a := range strings.Split(addrs, ",") {
			if h := hostOf(strings.TrimSpace(a)); h != "" && h != host {
				c.Peers = append(c.Peers, net.JoinHostPort(h, port))
			}
		}
	}

	c.BootstrapWait, _, _ = v.Duration("bootstrap-wait")

	if v, ok := server("wsrep-provider-options"); ok {
		c.Weight = pcWeight(v)
	}

	if v, ok := gs("peer-secret-file"); ok {
		secret, err := readSecret(v)
		if err != nil {
			return nil, bad("peer-secret-file", v, "%v", err)
		}
		c.Auth.Secret = secret
	}
	if on, _, _ := v.Bool("peer-tls"); on {
		get := func(names ...string) string {
			for _, n := range names {
				if v, ok := sst(n); ok {
					return v
				}
			}
			return ""
		}
		s, cl, err := NewTLS(get("tcert", "ssl-cert"), get("tkey", "ssl-key"), get("tca", "ssl-ca"))
		if err != nil {
			return nil, &OptionError{Option: "peer-tls", Value: "on", Msg: err.Error()}
		}
		c.Auth.ServerTLS, c.Auth.ClientTLS = s, cl
	}

	c.AutoBootstrap = c.Auth.Configured()
	if on, ok, _ := v.Bool("auto-bootstrap"); ok {
		if on && !c.Auth.Configured() {
			return nil, bad("auto-bootstrap", "on", "needs peer authentication: set peer-secret-file or peer-tls = on")
		}
		c.AutoBootstrap = on
	}
	if !c.Auth.Configured() {
		c.Why = "no peer authentication configured ([galera-supervisor] peer-secret-file or peer-tls = on)"
	} else if len(c.Peers) == 0 {
		return nil, &OptionError{Option: "peers", Msg: "no peer (set peers = host:port,... or wsrep_cluster_address)"}
	}
	return c, nil
}

// pcWeight reads pc.weight from wsrep_provider_options: nil when not
// set, or not a weight Galera takes (0 to 255): Galera then refuses to
// start, and says why.
func pcWeight(opts string) *int {
	var w *int
	for _, o := range strings.Split(strings.Trim(opts, `'"`), ";") {
		k, v, _ := strings.Cut(o, "=")
		if strings.TrimSpace(k) != "pc.weight" {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 && n <= 255 {
			w = &n
		}
	}
	return w
}

// hostOf is the host of "host", "host:port" or "[v6]:port".
func hostOf(a string) string {
	if h, _, err := net.SplitHostPort(a); err == nil {
		return h
	}
	return strings.Trim(a, "[]")
}

// minSecret is the shortest shared secret accepted.
const minSecret = 16

// readSecret reads a shared secret file: not readable by others, at least
// minSecret bytes once surrounding whitespace is trimmed.
func readSecret(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("readable by every user (mode %v): chmod o-r", st.Mode().Perm())
	}
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) < minSecret {
		return nil, fmt.Errorf("the secret is %d bytes; want at least %d", len(b), minSecret)
	}
	return b, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > 1<<20 {
		return nil, fmt.Errorf("%s: larger than 1 MiB", path)
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(f)
	return buf.Bytes(), err
}
