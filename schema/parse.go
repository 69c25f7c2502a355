package schema

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseBool reads an option's boolean: 1/0, on/off, yes/no, true/false.
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "on", "yes", "true":
		return true, nil
	case "0", "off", "no", "false":
		return false, nil
	}
	return false, errors.New("want 0 or 1 (or on/off, yes/no, true/false)")
}

// parseSize reads a byte count with an optional K, M, G or T suffix, powers
// of 1024 as mariadb-backup and pv read them: "4M", "512k", "1048576".
func parseSize(v string) (int64, error) {
	t, mult := cutSuffix(strings.TrimSpace(v))
	n, err := strconv.ParseUint(t, 10, 63)
	if err != nil || t == "" || n > math.MaxInt64/uint64(mult) {
		return 0, errors.New("not a size (a whole number with an optional K, M, G or T suffix: 4M)")
	}
	return int64(n) * mult, nil
}

// parseRate reads pv -L's rate: bytes per second, a number with an optional
// K, M, G or T suffix (powers of 1024), a fraction allowed ("1.5G"). The
// result is rounded down to whole bytes.
func parseRate(v string) (int64, error) {
	t, mult := cutSuffix(strings.TrimSpace(v))
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || t == "" || strings.ContainsAny(t, "eExXpPnNiI_+-") || f*float64(mult) >= 1<<62 {
		return 0, errors.New("not a rate (bytes per second, pv -L syntax: 100M, 1.5G, 10k)")
	}
	return int64(f * float64(mult)), nil
}

func cutSuffix(t string) (string, int64) {
	if t == "" {
		return t, 1
	}
	switch t[len(t)-1] {
	case 'k', 'K':
		return t[:len(t)-1], 1 << 10
	case 'm', 'M':
		return t[:len(t)-1], 1 << 20
	case 'g', 'G':
		return t[:len(t)-1], 1 << 30
	case 't', 'T':
		return t[:len(t)-1], 1 << 40
	}
	return t, 1
}

// parseDuration reads a duration: a whole number counts in unit (seconds
// for timeouts, days for ages), a number with a unit is what it says:
// "300", "300s", "5m", "1h30m", "30d". Negative durations are refused.
func parseDuration(v string, unit time.Duration) (time.Duration, error) {
	v = strings.TrimSpace(v)
	want := "seconds"
	if unit == Day {
		want = "days"
	}
	bad := fmt.Errorf("not a duration (%s, or a number with a unit: 300s, 5m, 12h, 30d)", want)
	if v == "" {
		return 0, bad
	}
	n, mult := v, unit
	if d, ok := strings.CutSuffix(v, "d"); ok {
		n, mult = d, Day
	}
	if c, err := strconv.ParseUint(n, 10, 63); err == nil {
		if c > uint64(math.MaxInt64/int64(mult)) {
			return 0, errors.New("too long")
		}
		return time.Duration(c) * mult, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || strings.HasPrefix(v, "+") {
		return 0, bad
	}
	return d, nil
}

// Day is the unit of ages ("sst-log-archive-max-age = 30").
const Day = 24 * time.Hour

// SockOpt is what the native methods understand of the stock [sst]
// sockopt, a socat option list such as ",keepalive,nodelay,sndbuf=4194304".
type SockOpt struct {
	NoDelay      bool // TCP_NODELAY (set anyway on data streams)
	KeepIdle     time.Duration
	KeepInterval time.Duration
	KeepCount    int
	SendBuf      int
	RecvBuf      int
	Ignored      []string // socat options with no meaning here, logged at Listen/Dial
}

// parseSockOpt reads a socat option list. Unknown socat options are kept
// in Ignored (they are valid socat, only meaningless here); a known one
// with a bad value is an error.
func parseSockOpt(s string) (SockOpt, error) {
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
