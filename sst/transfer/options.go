package transfer

import (
	"cmp"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/galera-supervisor/galera-supervisor/notify/logging"
	"github.com/galera-supervisor/galera-supervisor/schema"
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

// SockOpt is what the engine understands of the stock [sst] sockopt.
type SockOpt = schema.SockOpt

// OptionsFrom builds Options from the [sst] options that lookup returns
// (lookup does the group precedence: tcert and the like from [sst], the
// ssl-* fallbacks from the server groups too), parsed by package schema
// as "config check" parses them. Errors name the option.
func OptionsFrom(lookup func(name string) (string, bool), role Role) (Options, error) {
	o := Options{Role: role}
	v := schema.Values{Group: schema.SST, Look: lookup}
	var errs []error
	check := func(set bool, err error) bool {
		if err != nil {
			errs = append(errs, err)
		}
		return set && err == nil
	}
	if n, set, err := v.Int("transfer-streams"); check(set, err) {
		o.Streams = int(n)
	}
	if n, set, err := v.Int("transfer-chunk-size"); check(set, err) {
		o.ChunkSize = int(n)
	}
	if d, set, err := v.Duration("sst-initial-timeout"); check(set, err) {
		o.InitialTimeout = cmp.Or(d, -1) // 0 waits forever
	}
	if d, set, err := v.Duration("transfer-idle-timeout"); check(set, err) {
		o.IdleTimeout = cmp.Or(d, -1)
	}
	if b, set, err := v.Bool("transfer-sync"); check(set, err) {
		o.NoSync = !b
	}
	if n, set, err := v.Int("rlimit"); check(set, err) {
		o.RateLimit = n
	}
	if p, set, err := v.String("progress"); check(set, err) && strings.EqualFold(p, "none") {
		o.RateLimit = 0 // stock: progress=none disables pv, hence rlimit
	}
	o.Compressor, _, _ = v.String("compressor")
	o.Decompressor, _, _ = v.String("decompressor")
	if so, set, err := v.SockOpt("sockopt"); check(set, err) {
		o.SockOpt = so
	}
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	t, err := tlsFrom(v, role)
	if err != nil {
		return o, err
	}
	o.TLS = t
	return o, nil
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

// logIgnored says which parts of sockopt and ssl-cipher mean nothing here.
func (o *Options) logIgnored() {
	if len(o.SockOpt.Ignored) > 0 {
		o.log().Info("transfer: ignoring socat-only sockopt", slog.String("sockopt_ignored", strings.Join(o.SockOpt.Ignored, ",")))
	}
	if len(o.TLS.CipherIgnored) > 0 {
		o.log().Info("transfer: ssl-cipher entries with no TLS 1.2 suite here, ignored", slog.String("ssl_cipher_ignored", strings.Join(o.TLS.CipherIgnored, ",")))
	}
}
