package transfer

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultPort is the SST port when an address names none, as in the stock
// scripts.
const DefaultPort = 4444

// Address is a joiner's SST address, host[:port][/path], as the server
// passes it in --address and as the joiner prints it after "ready".
type Address struct {
	Host string // host name or IP literal, without brackets
	Port int    // DefaultPort when the address names none; 0 asks Listen for any port
	Path string // what follows the first '/', without it; "" when absent
}

// ParseAddress parses host[:port][/path]. IPv6 literals come in brackets
// ("[::1]:4444/x"); a bare IPv6 literal without port is accepted too.
func ParseAddress(s string) (Address, error) {
	var a Address
	in := s
	if s == "" {
		return a, errors.New("parse SST address: empty")
	}
	if len(s) > 1024 {
		return a, fmt.Errorf("parse SST address %.40q...: too long", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return a, fmt.Errorf("parse SST address %q: invalid character %q", in, c)
		}
	}
	hostport := s
	if i := strings.IndexByte(s, '/'); i >= 0 {
		hostport, a.Path = s[:i], s[i+1:]
	}
	var port string
	switch {
	case strings.HasPrefix(hostport, "["):
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return a, fmt.Errorf("parse SST address %q: missing ']'", in)
		}
		a.Host = hostport[1:end]
		rest := hostport[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return a, fmt.Errorf("parse SST address %q: unexpected %q after ']'", in, rest)
			}
			port = rest[1:]
			if port == "" {
				return a, fmt.Errorf("parse SST address %q: empty port", in)
			}
		}
		ip, err := netip.ParseAddr(a.Host)
		if err != nil || !ip.Is6() || !goodZone(ip.Zone()) {
			return a, fmt.Errorf("parse SST address %q: %q in brackets is not an IPv6 address", in, a.Host)
		}
	case strings.Count(hostport, ":") > 1:
		// A bare IPv6 literal: it cannot carry a port without brackets.
		ip, err := netip.ParseAddr(hostport)
		if err != nil || !ip.Is6() || !goodZone(ip.Zone()) {
			return a, fmt.Errorf("parse SST address %q: IPv6 address must be in brackets to carry a port", in)
		}
		a.Host = hostport
	default:
		a.Host = hostport
		if i := strings.IndexByte(hostport, ':'); i >= 0 {
			a.Host, port = hostport[:i], hostport[i+1:]
			if port == "" {
				return a, fmt.Errorf("parse SST address %q: empty port", in)
			}
		}
		if err := checkHost(a.Host); err != nil {
			return a, fmt.Errorf("parse SST address %q: %w", in, err)
		}
	}
	a.Port = DefaultPort
	if port != "" {
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || port[0] == '+' {
			return a, fmt.Errorf("parse SST address %q: bad port %q", in, port)
		}
		a.Port = int(p)
	}
	return a, nil
}

// goodZone accepts the zones of link-local addresses ("fe80::1%eth0"):
// interface names or indexes, never the brackets or separators of the
// address syntax itself.
func goodZone(z string) bool {
	for i := 0; i < len(z); i++ {
		c := z[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// checkHost accepts IPv4 literals and host names (RFC 1123 labels, plus '_'
// which resolvers tolerate).
func checkHost(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if len(h) > 253 {
		return errors.New("host name too long")
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("bad host name %q", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' ||
				c == '-' && i > 0 && i < len(label)-1
			if !ok {
				return fmt.Errorf("bad host name %q", h)
			}
		}
	}
	return nil
}

// HostPort is the address for net.Dial and net.Listen.
func (a Address) HostPort() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// String renders host:port[/path] with IPv6 literals in brackets, the form
// the joiner prints after "ready".
func (a Address) String() string {
	s := a.HostPort()
	if a.Path != "" {
		s += "/" + a.Path
	}
	return s
}

// Segments splits Path at '/', keeping empty segments, so that
// "xtrabackup_sst//1" gives ["xtrabackup_sst", "", "1"]. It is nil when
// Path is empty.
func (a Address) Segments() []string {
	if a.Path == "" {
		return nil
	}
	return strings.Split(a.Path, "/")
}
