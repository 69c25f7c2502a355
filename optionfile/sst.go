package optionfile

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SSTOption is one option of the [sst] group and how to check its value.
type SSTOption struct {
	Name  string             // canonical spelling, with dashes
	Doc   string             // one line, for help and messages
	Check func(string) error // nil accepts any value; called only when the option has a value
	Bare  bool               // may appear without a value
}

// SSTVocabulary is every option [sst] may hold: what the stock SST scripts
// read (sst-contract.md §2.2) and what the native methods add. Later
// features extend this table; "config check" and the native methods both
// go by it.
var SSTVocabulary = []SSTOption{
	{Name: "streamfmt", Doc: "stream format of mariabackup SST: mbstream, xbstream or tar", Check: oneOf("mbstream", "xbstream", "tar")},
	{Name: "transferfmt", Doc: "transfer tool of the stock scripts: socat or nc", Check: oneOf("socat", "nc")},
	{Name: "encrypt", Doc: "0 none, 1 stream cipher, 2 TLS with tcert+tca, 3 TLS with cert+key, 4 like 3 with a mandatory CA", Check: intRange(0, 4)},
	{Name: "encrypt-algo", Doc: "cipher of encrypt=1"},
	{Name: "encrypt-format", Doc: "tool of encrypt=1: openssl or xbcrypt", Check: oneOf("openssl", "xbcrypt")},
	{Name: "encrypt-key", Doc: "key of encrypt=1"},
	{Name: "encrypt-key-file", Doc: "key file of encrypt=1", Check: nonEmpty},
	{Name: "encrypt-threads", Doc: "threads of encrypt=1", Check: intRange(1, 1<<16)},
	{Name: "encrypt-chunk-size", Doc: "chunk size of encrypt=1", Check: size},
	{Name: "ssl-mode", Doc: "DISABLED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY", Check: oneOfFold("DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")},
	{Name: "tkey", Doc: "TLS private key (legacy name)", Check: nonEmpty},
	{Name: "tcert", Doc: "TLS certificate, PEM (legacy name)", Check: nonEmpty},
	{Name: "tca", Doc: "TLS CA certificate (legacy name)", Check: nonEmpty},
	{Name: "tcapath", Doc: "TLS CA directory (legacy name)", Check: nonEmpty},
	{Name: "ssl", Doc: "use TLS", Check: boolean, Bare: true},
	{Name: "ssl-ca", Doc: "TLS CA certificate", Check: nonEmpty},
	{Name: "ssl-capath", Doc: "TLS CA directory", Check: nonEmpty},
	{Name: "ssl-cert", Doc: "TLS certificate", Check: nonEmpty},
	{Name: "ssl-key", Doc: "TLS private key", Check: nonEmpty},
	{Name: "ssl-cipher", Doc: "TLS cipher list", Check: nonEmpty},
	{Name: "ssl-crl", Doc: "TLS certificate revocation list", Check: nonEmpty},
	{Name: "ssl-crlpath", Doc: "TLS certificate revocation list directory", Check: nonEmpty},
	{Name: "ssl-dhparams", Doc: "Diffie-Hellman parameters for encrypt >= 2", Check: nonEmpty},
	{Name: "sockopt", Doc: "extra socat address options"},
	{Name: "progress", Doc: "1 (pv to stderr), none, or a file or FIFO for progress", Check: nonEmpty},
	{Name: "time", Doc: "log how long each stage takes", Check: boolean},
	{Name: "cpat", Doc: "regular expression of paths the joiner keeps when it cleans its datadir", Check: nonEmpty},
	{Name: "compressor", Doc: "shell filter compressing the stream", Check: nonEmpty},
	{Name: "decompressor", Doc: "shell filter decompressing the stream", Check: nonEmpty},
	{Name: "rlimit", Doc: "donor rate limit in bytes/s, pv -L syntax (100M)", Check: rate},
	{Name: "use-extra", Doc: "back up over extra-port", Check: boolean},
	{Name: "sst-special-dirs", Doc: "handle innodb/aria directories outside the datadir (0 is not supported)", Check: boolean},
	{Name: "inno-backup-opts", Doc: "extra mariadb-backup --backup arguments"},
	{Name: "inno-apply-opts", Doc: "extra mariadb-backup --prepare arguments"},
	{Name: "inno-move-opts", Doc: "extra mariadb-backup --move-back arguments"},
	{Name: "use-memory", Doc: "mariadb-backup --use-memory for --prepare (size, 1G)", Check: size},
	{Name: "sst-initial-timeout", Doc: "seconds the joiner waits for the first data (default 300, 0 waits forever)", Check: intRange(0, 1<<31-1)},
	{Name: "sst-syslog", Doc: "1 logs SST to syslog instead of its log files, -1 never; 0 (default) follows [mysqld_safe] syslog", Check: intRange(-1, 1)},
	{Name: "sst-log-archive", Doc: "archive the previous SST's logs before a new SST (default 1)", Check: boolean},
	{Name: "sst-log-archive-dir", Doc: "directory of archived SST logs (default /tmp/sst_log_archive)", Check: nonEmpty},
	{Name: "compress", Doc: "mariadb-backup --compress (qpress); none disables"},
	{Name: "compress-threads", Doc: "mariadb-backup --compress-threads", Check: intRange(1, 1<<16)},
	{Name: "compress-chunk-size", Doc: "mariadb-backup --compress-chunk-size", Check: size},
	{Name: "backup-threads", Doc: "parallel copy threads (mariadb-backup --parallel, rsync workers)", Check: intRange(1, 1<<16)},
	{Name: "tmpdir", Doc: "donor working directory", Check: nonEmpty},
	{Name: "wsrep-sst-auth", Doc: "user:password for the donor, when the server passes none"},
	{Name: "sst-max-binlogs", Doc: "binlogs the rsync donor sends (<= 0: all)", Check: intRange(-1<<31, 1<<31-1)},
	// The native methods' own options.
	{Name: "delta", Doc: "native-copy: 1 sends only blocks that differ from the joiner's old datadir; auto when one is present", Check: oneOfFold("0", "1", "auto")},
	{Name: "transfer-streams", Doc: "native methods: parallel TCP streams, each one disk request in flight on either side (default 8; native-backup 4)", Check: intRange(1, 64)},
	{Name: "transfer-chunk-size", Doc: "native methods: bytes per checksummed chunk, 4k to 8M (default: native-copy 4M, 2M with a compressor; native-backup 1M)", Check: size},
	{Name: "transfer-idle-timeout", Doc: "native methods: seconds of silence before a peer counts as gone (default 120)", Check: intRange(0, 1<<31-1)},
	{Name: "sst-log-archive-keep", Doc: "native methods: archived copies kept of each SST log (default 10, 0 no limit)", Check: intRange(0, 1<<31-1)},
	{Name: "sst-log-archive-max-age", Doc: "native methods: archived SST logs older than this are removed: days, or 12h, 90m (default 30d, 0 no limit)", Check: age},
	{Name: "sst-syslog-socket", Doc: "native methods: the syslog daemon's socket for sst-syslog (default /dev/log)", Check: nonEmpty},
	{Name: "transfer-sync", Doc: "native methods: 0 skips the joiner's final syncfs", Check: boolean},
}

// Finding is one problem "config check" reports.
type Finding struct {
	Option Option
	Error  bool // false: a warning
	Msg    string
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: [%s] %s", f.Option.Pos(), f.Option.Group, f.Msg)
}

// CheckSST checks the [sst] group (and [sst<suffix>]) of s against
// SSTVocabulary: unknown options are warnings, bad values errors.
func CheckSST(s *Set) []Finding {
	byKey := make(map[string]SSTOption, len(SSTVocabulary))
	for _, v := range SSTVocabulary {
		byKey[v.Name] = v
	}
	var out []Finding
	for _, o := range s.Options("sst") {
		def, ok := byKey[o.Key()]
		switch {
		case !ok:
			msg := fmt.Sprintf("unknown option '%s'", o.Name)
			if near := nearest(o.Key()); near != "" {
				msg += fmt.Sprintf(" (did you mean '%s'?)", near)
			}
			out = append(out, Finding{Option: o, Msg: msg})
		case !o.HasValue && !def.Bare:
			out = append(out, Finding{Option: o, Error: true, Msg: fmt.Sprintf("%s needs a value (%s)", o.Name, def.Doc)})
		case o.HasValue && def.Check != nil:
			if err := def.Check(o.Value); err != nil {
				out = append(out, Finding{Option: o, Error: true, Msg: fmt.Sprintf("invalid %s = %q: %v", o.Name, o.Value, err)})
			}
		}
		if ok && def.Name == "sst-special-dirs" && o.HasValue && boolean(o.Value) == nil && !truthy(o.Value) {
			out = append(out, Finding{Option: o, Msg: "sst-special-dirs = 0 is not supported; the SST scripts use 1"})
		}
	}
	return out
}

// nearest returns the vocabulary name closest to key, if it is close.
func nearest(key string) string {
	best, bestD := "", 3
	names := make([]string, 0, len(SSTVocabulary))
	for _, v := range SSTVocabulary {
		names = append(names, v.Name)
	}
	sort.Strings(names)
	for _, n := range names {
		if d := editDistance(key, n); d < bestD && d <= len(n)/3 {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		for _, ok := range vals {
			if v == ok {
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(vals, ", "))
	}
}

func oneOfFold(vals ...string) func(string) error {
	return func(v string) error {
		for _, ok := range vals {
			if strings.EqualFold(v, ok) {
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(vals, ", "))
	}
}

func intRange(lo, hi int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		if n < lo || n > hi {
			return fmt.Errorf("out of range %d..%d", lo, hi)
		}
		return nil
	}
}

func nonEmpty(v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("empty")
	}
	return nil
}

func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "on", "yes", "true":
		return true
	}
	return false
}

func boolean(v string) error {
	_, err := ParseBool(v)
	return err
}

// ParseBool reads an option's boolean: 1/0, on/off, yes/no, true/false.
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "on", "yes", "true":
		return true, nil
	case "0", "off", "no", "false":
		return false, nil
	}
	return false, fmt.Errorf("must be 0 or 1 (or on/off, yes/no, true/false)")
}

func age(v string) error {
	_, err := ParseAge(v)
	return err
}

// ParseAge reads an age: days ("30"), a number with d, h, m or s ("30d",
// "12h", "90m"), or a Go duration ("1h30m"); 0 means no limit.
func ParseAge(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	days := v
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days = n
	}
	if n, err := strconv.ParseUint(days, 10, 32); err == nil {
		if n > 36500 {
			return 0, fmt.Errorf("more than 36500 days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("not an age (days, or a number with d, h, m or s: 30d, 12h)")
	}
	return d, nil
}

var (
	sizeRE = regexp.MustCompile(`^[0-9]+[kKmMgGtT]?$`)
	rateRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?[kKmMgGtT]?$`)
)

// size is a byte count with an optional K/M/G/T suffix (mariadb-backup).
func size(v string) error {
	if !sizeRE.MatchString(v) {
		return fmt.Errorf("not a size (a number with an optional K, M, G or T suffix)")
	}
	return nil
}

// rate is pv -L's syntax: a positive number with an optional K/M/G/T suffix.
func rate(v string) error {
	if !rateRE.MatchString(v) {
		return fmt.Errorf("not a rate (pv -L syntax: a number with an optional K, M, G or T suffix, e.g. 100M)")
	}
	if f, err := strconv.ParseFloat(strings.TrimRight(v, "kKmMgGtT"), 64); err != nil || f <= 0 {
		return fmt.Errorf("must be more than 0")
	}
	return nil
}
