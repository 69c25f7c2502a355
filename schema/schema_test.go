package schema

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/optionfile"
)

// TestTable: names are unique and canonical, each option says what it is,
// a default parses, and an option that is not honoured says why.
func TestTable(t *testing.T) {
	seen := map[string]bool{}
	for _, o := range table {
		for _, n := range append([]string{o.Name}, o.Aliases...) {
			k := string(o.Group) + "/" + n
			if n != key(n) || seen[k] {
				t.Errorf("%s: not unique, or not with dashes", k)
			}
			seen[k] = true
		}
		if o.Doc == "" {
			t.Errorf("%s: no Doc", o.Name)
		}
		if o.Default != "" {
			if _, err := o.Parse(o.Default); err != nil {
				t.Errorf("%s: default %q: %v", o.Name, o.Default, err)
			}
		}
		if (o.Handling == Mapped || o.Handling == Ignored || o.Handling == Refused) && o.Native == "" {
			t.Errorf("%s: %v without a sentence saying why", o.Name, o.Handling)
		}
		if o.Handling == Refused && len(o.RefusedValues) == 0 {
			t.Errorf("%s: refused without RefusedValues", o.Name)
		}
		if o.Group == SST && o.Handling != Ignored && !slices.ContainsFunc(Native, func(m string) bool { return slices.Contains(o.Methods, m) }) {
			t.Errorf("%s: %v but no native method reads it", o.Name, o.Handling)
		}
	}
	// What the stock scripts' parse_cnf reads from [sst], and what the
	// mariadb-backup SST documentation names.
	for _, n := range []string{"streamfmt", "transferfmt", "encrypt", "encrypt-algo", "encrypt-key", "encrypt-key-file",
		"ssl-mode", "tkey", "tcert", "tca", "tcapath", "ssl-cipher", "ssl-crl", "ssl-dhparams", "sockopt", "progress",
		"time", "cpat", "compressor", "decompressor", "rlimit", "use-extra", "sst-special-dirs", "inno-backup-opts",
		"inno-apply-opts", "inno-move-opts", "use-memory", "sst-initial-timeout", "sst-idle-timeout", "sst-syslog",
		"sst-log-archive", "sst-log-archive-dir", "compress", "compress-threads", "compress-chunk-size",
		"backup-threads", "tmpdir", "wsrep-sst-auth"} {
		if Find(SST, n) == nil {
			t.Errorf("[sst] %s is not in the schema", n)
		}
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{"100": 100, "10k": 10 << 10, "10K": 10 << 10, "100M": 100 << 20, "1.5m": 3 << 19, "2G": 2 << 30, "1t": 1 << 40, " 5M ": 5 << 20, "0": 0} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1", "1e9", "10x", "abc", "0x10", "NaN", "inf", "+5"} {
		if got, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) = %d, want an error", in, got)
		}
	}
	for in, want := range map[string]int64{"4k": 4 << 10, "8M": 8 << 20, "1048576": 1 << 20} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"1.5M", "-4k", "k", "99999999999T"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
	for in, want := range map[string]time.Duration{"300": 300 * time.Second, "300s": 300 * time.Second, "5m": 5 * time.Minute, "1h30m": 90 * time.Minute, "2d": 48 * time.Hour, "0": 0} {
		if got, err := parseDuration(in, time.Second); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if got, err := parseDuration("30", Day); err != nil || got != 30*Day {
		t.Errorf("parseDuration(30, Day) = %v, %v", got, err)
	}
	for _, in := range []string{"", "d", "-1h", "-1", "1w", "3 days", "+5m", "99999999999999d"} {
		if _, err := parseDuration(in, time.Second); err == nil {
			t.Errorf("parseDuration(%q) accepted", in)
		}
	}
}

// TestValues: ranges, aliases, defaults, and the errors' words.
func TestValues(t *testing.T) {
	m := map[string]string{}
	v := Values{Group: SST, Look: func(n string) (string, bool) { x, ok := m[n]; return x, ok }}
	if d, set, err := v.Duration("transfer-idle-timeout"); d != 120*time.Second || set || err != nil {
		t.Errorf("default idle timeout: %v %v %v", d, set, err)
	}
	m["sst-idle-timeout"] = "5m"
	if d, set, err := v.Duration("transfer-idle-timeout"); d != 5*time.Minute || !set || err != nil {
		t.Errorf("sst-idle-timeout alias: %v %v %v", d, set, err)
	}
	m["transfer-idle-timeout"] = "7s" // the canonical name wins
	if d, _, _ := v.Duration("transfer-idle-timeout"); d != 7*time.Second {
		t.Errorf("canonical over alias: %v", d)
	}
	for opt, tc := range map[string]struct{ val, want string }{
		"transfer-chunk-size": {"16M", "[sst] transfer-chunk-size=16M: want 4k to 8M"},
		"rlimit":              {"0.0001", "[sst] rlimit=0.0001: want at least 1"},
		"transfer-streams":    {"0", "[sst] transfer-streams=0: want 1 to 64"},
		"sst-initial-timeout": {"1.5s", "[sst] sst-initial-timeout=1.5s: want whole seconds"},
		"ssl-mode":            {"sometimes", "[sst] ssl-mode=sometimes: want DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY"},
	} {
		m[opt] = tc.val
		if err := v.CheckNative(opt); err == nil || err.Error() != tc.want {
			t.Errorf("%s=%s: %v, want %q", opt, tc.val, err, tc.want)
		}
	}
	m = map[string]string{"encrypt": "1", "streamfmt": "tar", "delta": "AUTO"}
	errs, warns := v.Problems(NativeCopy)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "encrypt=1: native methods encrypt with TLS only") {
		t.Errorf("encrypt=1 under native-copy: %v", errs)
	}
	if len(warns) != 1 || warns[0].Option != "streamfmt" {
		t.Errorf("streamfmt under native-copy: %v", warns)
	}
	if s, _, _ := v.String("delta"); s != "auto" {
		t.Errorf("delta=AUTO reads %q, want the schema's spelling", s)
	}
	m["ssl-cipher"] = "HIGH:!aNULL"
	if errs, _ := v.Problems(NativeBackup); len(errs) != 2 || !strings.Contains(errs[1].Error(), "ssl-cipher=HIGH:!aNULL: names no TLS 1.2 suite") {
		t.Errorf("ssl-cipher of keywords only under native-backup: %v", errs)
	}
	if errs, warns := v.Problems(Mariabackup); len(errs) != 0 || len(warns) != 1 || warns[0].Option != "delta" {
		t.Errorf("under mariabackup: %v %v (encrypt=1 and OpenSSL's keywords are stock's; delta is not)", errs, warns)
	}
}

// TestCheckSet: every finding of both groups at once, labelled, with
// file:line, and the same words as Values.
func TestCheckSet(t *testing.T) {
	dir := t.TempDir()
	cnf := filepath.Join(dir, "x.cnf")
	body := strings.Join([]string{
		"[mysqld]",
		"wsrep_sst_method = native-copy",
		"compresor = not checked here", // 3
		"[sst]",
		"compressor = lz4 -z",       // 5: fine
		"compresor = lz4 -z",        // 6: typo
		"encrypt = 7",               // 7: out of range
		"ssl_mode = verify_ca",      // 8: fine
		"rlimit = 1.5G",             // 9: fine
		"rlimit = fast",             // 10
		"sst-initial-timeout = 5m",  // 11: fine
		"streamfmt = xbstream",      // 12: warned under native-copy
		"progress",                  // 13: bare
		"sst-special-dirs = 0",      // 14: refused by native methods
		"transfer-chunk-size = 16M", // 15
		"[galera-supervisor]",
		"bootstrap-wait = 5m", // 17: fine
		"bootstrap_wiat = 5",  // 18
	}, "\n") + "\n"
	if err := os.WriteFile(cnf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := optionfile.Load(optionfile.Sources{DefaultsFile: cnf})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range CheckSet(set, NativeCopy) {
		got = append(got, strings.TrimPrefix(f.String(), cnf))
	}
	want := []string{
		":6: warning: [sst] unknown option 'compresor' (did you mean 'compressor'?)",
		":7: error: [sst] encrypt=7: want 0 to 4",
		":10: error: [sst] rlimit=fast: not a rate (bytes per second, pv -L syntax: 100M, 1.5G, 10k)",
		":12: warning: [sst] streamfmt: " + streamText,
		":13: warning: [sst] progress without a value reads as progress=1 (1 (pv's lines to stderr), none, or a file or FIFO for pv's lines)",
		":14: error: [sst] sst-special-dirs=0: native methods always copy the InnoDB and Aria directories outside the datadir (sst-special-dirs=1, stock's default); 0 is not supported",
		":15: error: [sst] transfer-chunk-size=16M: want 4k to 8M",
		":18: warning: [galera-supervisor] unknown option 'bootstrap_wiat' (did you mean 'bootstrap-wait'?)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCheckReadable(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755) // searchable by others, as /etc/mysql is
	os.Chmod(dir, 0o755)
	key := filepath.Join(dir, "key.pem")
	os.WriteFile(key, []byte("x"), 0o600)
	cnf := filepath.Join(dir, "x.cnf")
	os.WriteFile(cnf, []byte("[sst]\ntkey = "+key+"\ntmpdir = /nonexistent\n[galera-supervisor]\npeer-secret-file = "+dir+"/none\n"), 0o644)
	set, err := optionfile.Load(optionfile.Sources{DefaultsFile: cnf})
	if err != nil {
		t.Fatal(err)
	}
	other := Account{Name: "other", UID: 4242, GIDs: []uint32{4242}}
	var got []string
	for _, f := range CheckReadable(set, other) {
		got = append(got, strings.TrimPrefix(f.String(), cnf))
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], ":2: error: [sst] tkey="+key+": other cannot read "+key) ||
		!strings.HasPrefix(got[1], ":5: error: [galera-supervisor] peer-secret-file="+dir+"/none: stat") {
		t.Errorf("as another user: %q", got)
	}
	me := Account{Name: "me", UID: uint32(os.Getuid()), GIDs: []uint32{uint32(os.Getgid())}, IsRoot: os.Getuid() == 0}
	if fs := CheckReadable(set, me); len(fs) != 1 {
		t.Errorf("as the owner: %v (want only the missing secret)", fs)
	}
}

// FuzzParse: what an option accepts, it accepts again in its canonical
// spelling, config check and the SST's typed read agree, and a parse
// never panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"300", "5m", "16M", "4k", "1.5G", "0.0001", "on", "auto", "nodelay,sndbuf=4096", "a:1,b:2", "-1", "1e9", "99999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for i := range table {
			o := &table[i]
			_, perr := o.Parse(v)
			cerr := o.Check(o.Name, v, false)
			if (perr == nil) != (cerr == nil) {
				t.Fatalf("%s=%q: Parse %v but Check %v", o.Name, v, perr, cerr)
			}
			vals := Values{Group: o.Group, Look: func(string) (string, bool) { return v, true }}
			_, _, gerr := vals.get(o.Name)
			if strings.TrimSpace(v) != "" && (gerr == nil) != (perr == nil) {
				t.Fatalf("%s=%q: Parse %v but the typed read %v", o.Name, v, perr, gerr)
			}
			if d, err := o.Parse(v); err == nil && o.Kind == Duration && (d.(time.Duration) < 0) {
				t.Fatalf("%s=%q: negative %v", o.Name, v, d)
			}
		}
	})
}
