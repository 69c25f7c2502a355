package optionfile

import (
	"slices"
	"strings"
	"testing"
)

func TestCheckSST(t *testing.T) {
	file := strings.Join([]string{
		"[mysqld]",
		"compresor = not checked here", // 2
		"[sst]",
		"compressor = lz4 -z",      // 4: fine
		"compresor = lz4 -z",       // 5: typo
		"encrypt = 7",              // 6: out of range
		"ssl_mode = verify_ca",     // 7: fine, any case, '_' for '-'
		"ssl-mode = SOMETIMES",     // 8
		"rlimit = 100M",            // 9: fine
		"rlimit = 1.5G",            // 10: fine
		"rlimit = fast",            // 11
		"sst-initial-timeout = 5m", // 12
		"loose-sst-initial-timeout = 600",
		"streamfmt = xbstream",
		"streamfmt = zip",               // 15
		"progress",                      // 16: needs a value
		"sst-special-dirs = 0",          // 17: warning
		"totally-unknown = 1",           // 18: no suggestion
		"[SST.1]",                       // read with suffix .1
		"backup-threads = zero",         // 20
		"sst-log-archive-keep = many",   // 21
		"sst-log-archive-max-age = 1w",  // 22
		"sst-log-archive-max-age = 12h", // 23: fine
	}, "\n") + "\n"
	m := &memFS{files: map[string]string{"/etc/mysql/conf.d/x.cnf": file}}
	set, err := load(Sources{DefaultsFile: "/etc/mysql/conf.d/x.cnf", GroupSuffix: ".1"}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	errs := 0
	for _, f := range CheckSST(set) {
		got = append(got, f.String())
		if f.Error {
			errs++
		}
	}
	want := []string{
		"/etc/mysql/conf.d/x.cnf:5: [sst] unknown option 'compresor' (did you mean 'compressor'?)",
		`/etc/mysql/conf.d/x.cnf:6: [sst] invalid encrypt = "7": out of range 0..4`,
		`/etc/mysql/conf.d/x.cnf:8: [sst] invalid ssl-mode = "SOMETIMES": must be one of DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY`,
		`/etc/mysql/conf.d/x.cnf:11: [sst] invalid rlimit = "fast": not a rate (pv -L syntax: a number with an optional K, M, G or T suffix, e.g. 100M)`,
		`/etc/mysql/conf.d/x.cnf:12: [sst] invalid sst-initial-timeout = "5m": not an integer`,
		`/etc/mysql/conf.d/x.cnf:15: [sst] invalid streamfmt = "zip": must be one of mbstream, xbstream, tar`,
		"/etc/mysql/conf.d/x.cnf:16: [sst] progress needs a value (1 (pv to stderr), none, or a file or FIFO for progress)",
		"/etc/mysql/conf.d/x.cnf:17: [sst] sst-special-dirs = 0 is not supported; the SST scripts use 1",
		"/etc/mysql/conf.d/x.cnf:18: [sst] unknown option 'totally-unknown'",
		`/etc/mysql/conf.d/x.cnf:20: [SST.1] invalid backup-threads = "zero": not an integer`,
		`/etc/mysql/conf.d/x.cnf:21: [SST.1] invalid sst-log-archive-keep = "many": not an integer`,
		`/etc/mysql/conf.d/x.cnf:22: [SST.1] invalid sst-log-archive-max-age = "1w": not an age (days, or a number with d, h, m or s: 30d, 12h)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if errs != 9 {
		t.Errorf("%d errors, want 7", errs)
	}
}

func TestSSTVocabulary(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range SSTVocabulary {
		if v.Name != Key(v.Name) || v.Doc == "" || seen[v.Name] {
			t.Errorf("bad entry %+v (names are unique, with dashes; each has a Doc)", v)
		}
		seen[v.Name] = true
	}
	// The options of sst-contract.md §2.2 that [sst] may hold.
	for _, n := range []string{"streamfmt", "transferfmt", "encrypt", "ssl-mode", "tkey", "tcert", "tca", "tcapath",
		"ssl-dhparams", "sockopt", "progress", "time", "cpat", "compressor", "decompressor", "rlimit", "use-extra",
		"sst-special-dirs", "inno-backup-opts", "inno-apply-opts", "inno-move-opts", "use-memory", "sst-initial-timeout",
		"sst-syslog", "sst-log-archive", "sst-log-archive-dir", "compress", "compress-threads", "compress-chunk-size",
		"backup-threads", "tmpdir", "wsrep-sst-auth", "sst-max-binlogs"} {
		if !seen[n] {
			t.Errorf("%s missing from SSTVocabulary", n)
		}
	}
}
