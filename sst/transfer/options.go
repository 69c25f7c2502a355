package transfer

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"

	"github.com/galera-supervisor/galera-supervisor/sst/progress"
)

// Role is the side of a session.
type Role string

// The two sides of an SST.
const (
	Joiner Role = "joiner"
	Donor  Role = "donor"
)

// Defaults for the zero values of Options.
const (
	DefaultStreams        = 8
	DefaultChunkSize      = 1 << 20
	DefaultInitialTimeout = 300 * time.Second
	DefaultIdleTimeout    = 120 * time.Second
	DefaultKeepAlive      = 15 * time.Second
	MaxStreams            = 64
	MaxChunkSize          = 8 << 20
)

// Options configure a session. The zero value is usable: plain TCP, no
// compression, no rate limit, defaults for the rest. Durations: 0 means the
// default, a negative value disables.
type Options struct {
	Role   Role   // who this side is; Listen implies Joiner, Dial Donor
	Method string // for progress events and logs, e.g. "native-copy"

	Streams   int // parallel data connections (donor decides); default DefaultStreams
	ChunkSize int // payload bytes per frame (donor decides); default DefaultChunkSize

	TLS TLS

	// Compressor (donor) and Decompressor (joiner): "" for none, a command
	// naming lz4 for the built-in codec, anything else a shell filter.
	Compressor   string
	Decompressor string

	RateLimit int64 // bytes per second over all streams, on the sending side; 0 = none

	InitialTimeout time.Duration // joiner: until the donor has connected; default 300s
	IdleTimeout    time.Duration // either side: silence from a live session's peer; default 120s
	KeepAlive      time.Duration // TCP keepalive idle time; default 15s
	SockOpt        SockOpt

	NoSync bool // joiner: skip the syncfs of the received tree at Finish

	// ShrinkOK (donor): a file that shrinks while SendFile reads it is
	// padded with zeros up to its size at SendFile instead of failing the
	// session. Only for copy passes that resend changed files afterwards.
	ShrinkOK bool

	Reporter progress.Reporter // progress events, at most every ProgressInterval; nil = none
	Log      *slog.Logger      // diagnostics (the SST session's logger in the methods); nil = none

	// hook, in tests, runs at named points of a session, so that a test
	// can force an interleaving that load would otherwise make rare.
	hook func(point string, s *Session)
}

// ProgressInterval is the least time between two progress events.
const ProgressInterval = 200 * time.Millisecond

// SockOpt is what the engine understands of the stock [sst] sockopt, a
// socat option list such as ",keepalive,nodelay,sndbuf=4194304".
type SockOpt struct {
	NoDelay      bool // TCP_NODELAY (set anyway on data streams)
	KeepIdle     time.Duration
	KeepInterval time.Duration
	KeepCount    int
	SendBuf      int
	RecvBuf      int
	Ignored      []string // socat options with no meaning here, logged at Listen/Dial
}

// ParseSockOpt parses a socat option list; options that only make sense
// to socat are kept in Ignored rather than refused, so stock configs work.
func ParseSockOpt(s string) (SockOpt, error) {
	var o SockOpt
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		name, val, hasVal := strings.Cut(f, "=")
		num := func() (int, error) {
			n, err := strconv.Atoi(val)
			if !hasVal || err != nil || n < 0 {
				return 0, fmt.Errorf("sockopt %q: want %s=<non-negative integer>", f, name)
			}
			return n, nil
		}
		var err error
		var n int
		switch strings.ToLower(name) {
		case "nodelay":
			o.NoDelay = true
		case "keepalive", "so-keepalive":
			// always on
		case "keepidle", "tcp-keepidle":
			n, err = num()
			o.KeepIdle = time.Duration(n) * time.Second
		case "keepintvl", "tcp-keepintvl":
			n, err = num()
			o.KeepInterval = time.Duration(n) * time.Second
		case "keepcnt", "tcp-keepcnt":
			o.KeepCount, err = num()
		case "sndbuf", "so-sndbuf":
			o.SendBuf, err = num()
		case "rcvbuf", "so-rcvbuf":
			o.RecvBuf, err = num()
		default:
			o.Ignored = append(o.Ignored, f)
		}
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

// ParseRate parses a pv -L rate: a number of bytes per second with an
// optional suffix k, m, g or t (powers of 1024, as pv has it), e.g. "100M".
func ParseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		case 't', 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || f*mult > 1<<62 || t == "" || strings.ContainsAny(t, "eExXpPnN_") {
		return 0, fmt.Errorf("bad rate %q: want bytes per second, e.g. 100M or 10k", s)
	}
	return int64(f * mult), nil
}

// OptionsFrom builds Options from the [sst] options that lookup returns
// (lookup does the group precedence: tcert and the like from [sst], the
// ssl-* fallbacks from the server groups too). Errors name the option.
// Engine-specific options: transfer-streams, transfer-chunk-size,
// transfer-idle-timeout (seconds), transfer-sync (0 skips the final syncfs).
func OptionsFrom(lookup func(name string) (string, bool), role Role) (Options, error) {
	o := Options{Role: role}
	get := func(name string) (string, bool) {
		v, ok := lookup(name)
		v = strings.TrimSpace(v)
		return v, ok && v != ""
	}
	intOpt := func(name string, min, max int) (int, bool, error) {
		v, ok := get(name)
		if !ok {
			return 0, false, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < min || n > max {
			return 0, false, fmt.Errorf("[sst] %s=%s: want an integer from %d to %d", name, v, min, max)
		}
		return n, true, nil
	}

	if n, ok, err := intOpt("transfer-streams", 1, MaxStreams); err != nil {
		return o, err
	} else if ok {
		o.Streams = n
	}
	if v, ok := get("transfer-chunk-size"); ok {
		n, err := ParseRate(v) // same suffixes
		if err != nil || n < 4<<10 || n > MaxChunkSize {
			return o, fmt.Errorf("[sst] transfer-chunk-size=%s: want 4k to 8M", v)
		}
		o.ChunkSize = int(n)
	}
	if n, ok, err := intOpt("sst-initial-timeout", 0, 1<<31-1); err != nil {
		return o, err
	} else if ok {
		o.InitialTimeout = time.Duration(n) * time.Second
		if n == 0 {
			o.InitialTimeout = -1
		}
	}
	if n, ok, err := intOpt("transfer-idle-timeout", 0, 1<<31-1); err != nil {
		return o, err
	} else if ok {
		o.IdleTimeout = time.Duration(n) * time.Second
		if n == 0 {
			o.IdleTimeout = -1
		}
	}
	if v, ok := get("transfer-sync"); ok {
		b, err := parseBool(v)
		if err != nil {
			return o, fmt.Errorf("[sst] transfer-sync=%s: %w", v, err)
		}
		o.NoSync = !b
	}
	if v, ok := get("rlimit"); ok {
		n, err := ParseRate(v)
		if err != nil {
			return o, fmt.Errorf("[sst] rlimit=%s: %w", v, err)
		}
		o.RateLimit = n
	}
	if v, ok := get("progress"); ok && strings.EqualFold(v, "none") {
		o.RateLimit = 0 // stock: progress=none disables pv, hence rlimit
	}
	o.Compressor, _ = get("compressor")
	o.Decompressor, _ = get("decompressor")
	if v, ok := get("sockopt"); ok {
		so, err := ParseSockOpt(v)
		if err != nil {
			return o, fmt.Errorf("[sst] sockopt=%s: %w", v, err)
		}
		o.SockOpt = so
	}
	t, err := tlsFrom(get, role)
	if err != nil {
		return o, err
	}
	o.TLS = t
	return o, nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "on", "yes", "true":
		return true, nil
	case "0", "off", "no", "false":
		return false, nil
	}
	return false, fmt.Errorf("want 0 or 1")
}

func (o *Options) streams() int {
	if o.Streams <= 0 {
		return DefaultStreams
	}
	return min(o.Streams, MaxStreams)
}

func (o *Options) chunkSize() int {
	if o.ChunkSize <= 0 {
		return DefaultChunkSize
	}
	return min(max(o.ChunkSize, 4<<10), MaxChunkSize)
}

func dur(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

func (o *Options) at(point string, s *Session) {
	if o.hook != nil {
		o.hook(point, s)
	}
}

func (o *Options) log() *slog.Logger { return logging.OrDiscard(o.Log) }
