package optionfile

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
)

func args(opts []Option) []string {
	var out []string
	for _, o := range opts {
		out = append(out, o.Arg())
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		groups []string
		want   []string
	}{
		{"key value", "[a]\nk = v\n", []string{"a"}, []string{"--k=v"}},
		{"bare key", "[a]\n  skip-name-resolve  \n", []string{"a"}, []string{"--skip-name-resolve"}},
		{"empty value", "[a]\nk =   \n", []string{"a"}, []string{"--k="}},
		{"first = splits", "[a]\nk = a=b\n", []string{"a"}, []string{"--k=a=b"}},
		{"other groups skipped", "[a]\nx=1\n[b]\ny=2\n[a]\nz=3\n", []string{"a"}, []string{"--x=1", "--z=3"}},
		{"file order across groups", "[b]\ny=2\n[a]\nx=1\n", []string{"a", "b"}, []string{"--y=2", "--x=1"}},
		{"group case-insensitive", "[MySQLd]\nx=1\n", []string{"mysqld"}, []string{"--x=1"}},
		{"group trailing blank trimmed", "[a \t]\nx=1\n", []string{"a"}, []string{"--x=1"}},
		{"group leading blank kept", "[ a]\nx=1\n", []string{"a"}, nil},
		{"comment lines", "# c\n; c\n  # c\n[a]\n;x=1\nk=v\n", []string{"a"}, []string{"--k=v"}},
		{"inline hash comment", "[a]\nk = v # c\n", []string{"a"}, []string{"--k=v"}},
		{"inline semicolon is data", "[a]\nk = v ; c\n", []string{"a"}, []string{"--k=v ; c"}},
		{"hash in quotes", "[a]\nk = \"v # x\" # c\n", []string{"a"}, []string{"--k=v # x"}},
		{"apostrophe hides hash", "[a]\nk = it's # x\n", []string{"a"}, []string{"--k=it's # x"}},
		{"double quotes", "[a]\nk = \"  v  \"\n", []string{"a"}, []string{"--k=  v  "}},
		{"single quotes", "[a]\nk = 'v'\n", []string{"a"}, []string{"--k=v"}},
		{"mismatched quotes kept", "[a]\nk = \"v'\n", []string{"a"}, []string{"--k=\"v'"}},
		{"lone quote kept", "[a]\nk = \"\n", []string{"a"}, []string{"--k=\""}},
		{"empty quotes", "[a]\nk = \"\"\n", []string{"a"}, []string{"--k="}},
		{"outer pair only", "[a]\nk = \"a\"b\"\n", []string{"a"}, []string{"--k=a\"b"}},
		{"escapes", `[a]` + "\n" + `k = "a\nb\tc\rd\be\sf\\g\"h\'i"` + "\n", []string{"a"}, []string{"--k=a\nb\tc\rd\be f\\g\"h'i"}},
		{"escapes unquoted", "[a]\nk = a\\sb\n", []string{"a"}, []string{"--k=a b"}},
		{"unknown escape kept", "[a]\nk = \\x\\0\n", []string{"a"}, []string{"--k=\\x\\0"}},
		{"trailing backslash kept", "[a]\nk = abc\\\n", []string{"a"}, []string{"--k=abc\\"}},
		{"backslash before hash outside quotes", "[a]\nk = a\\#b\n", []string{"a"}, []string{"--k=a\\"}},
		{"crlf", "[a]\r\nk = v\r\n", []string{"a"}, []string{"--k=v"}},
		{"latin1 nbsp is blank", "[a]\nk =\xa0v\xa0\n", []string{"a"}, []string{"--k=v"}},
		{"key blanks kept inside", "[a]\na b = c\n", []string{"a"}, []string{"--a b=c"}},
		{"empty key runs into indent", "[a]\n  =v\n", []string{"a"}, []string{"--=v\n=v"}},
		{"nul ends line", "[a]\nk = ab\x00cd\nz=1\n", []string{"a"}, []string{"--k=ab", "--z=1"}},
		{"no final newline", "[a]\nk = v", []string{"a"}, []string{"--k=v"}},
		{"long line splits", "[a]\nk=" + strings.Repeat("x", 4100) + "\n", []string{"a"},
			[]string{"--k=" + strings.Repeat("x", 4092), "--" + strings.Repeat("x", 8)}},
		{"duplicates kept", "[a]\nk=1\nk=2\n", []string{"a"}, []string{"--k=1", "--k=2"}},
		{"group asked twice", "[a]\nk=1\n", []string{"a", "A", "a"}, []string{"--k=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &memFS{files: map[string]string{"/my.cnf": tt.file}}
			set, err := load(Sources{DefaultsFile: "/my.cnf"}, m, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := args(set.Options(tt.groups...)); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		want string // the error, file:line first
	}{
		{"option before group", "k=v\n[a]\n", "/my.cnf:1: option without preceding group"},
		{"unclosed group", "[a]\nx=1\n\n[b\n", "/my.cnf:4: wrong group definition (no closing ']')"},
		{"include without path", "[a]\n!include   \n", "/my.cnf:2: wrong '!include' directive: no path"},
		{"includedir without path", "[a]\n!includedir\t\n", "/my.cnf:2: wrong '!includedir' directive: no path"},
		{"include at eof loses last byte", "[a]\n!include x", "/my.cnf:2: wrong '!include' directive: no path"},
		{"missing includedir", "[a]\n\n!includedir /nope\n", "/my.cnf:3: !includedir: open /nope: file does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &memFS{files: map[string]string{"/my.cnf": tt.file}}
			_, err := load(Sources{DefaultsFile: "/my.cnf"}, m, nil)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "/my.cnf" || e.Line == 0 {
				t.Errorf("error %#v does not carry file and line", err)
			}
		})
	}
}

func TestInclude(t *testing.T) {
	m := &memFS{files: map[string]string{
		"/etc/my.cnf": "[a]\nbefore=1\n!include /etc/child.cnf\n!include /etc/missing.cnf\n" +
			"!includedir /etc/d/\nafter=1\n!bogus\n!include ~/home.cnf\n",
		"/etc/child.cnf":   "[a]\nchild=1\n[b]\nchild-b=1\n",
		"/etc/d/b.cnf":     "[a]\nd=b\n",
		"/etc/d/A.cnf":     "[a]\nd=A\n",
		"/etc/d/a.cnf":     "[a]\nd=a\n",
		"/etc/d/x.ini":     "[a]\nd=ini\n",
		"/etc/d/x.cnf~":    "[a]\nd=backup\n",
		"/etc/d/bad.cnf":   "oops\n",
		"/etc/d/ww.cnf":    "[a]\nd=world-writable\n",
		"/etc/d/sub.cnf/x": "[a]\nd=sub\n",
		"/home/u/home.cnf": "[a]\nhome=1\n",
	}, mode: map[string]fs.FileMode{"/etc/d/ww.cnf": 0o666}}
	set, err := load(Sources{DefaultsFile: "/etc/my.cnf", Home: "/home/u"}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--before=1", "--child=1", "--d=A", "--d=a", "--d=b", "--after=1", "--home=1"}
	if got := args(set.Options("a")); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	var warns []string
	for _, w := range set.Warnings() {
		warns = append(warns, w.Error())
	}
	wantWarns := []string{"/etc/d/bad.cnf:1: option without preceding group", "/etc/d/ww.cnf: world-writable option file is ignored"}
	if !slices.Equal(warns, wantWarns) {
		t.Errorf("warnings %q, want %q", warns, wantWarns)
	}
	if o, ok := set.Lookup([]string{"a"}, "d"); !ok || o.File != "/etc/d/b.cnf" || o.Line != 2 {
		t.Errorf("Lookup d = %+v, %v; want /etc/d/b.cnf:2", o, ok)
	}
}

func TestIncludeDepth(t *testing.T) {
	m := &memFS{files: map[string]string{"/r.cnf": "[a]\nk=1\n!include /r.cnf\n"}}
	set, err := load(Sources{DefaultsFile: "/r.cnf"}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(set.Options("a")); n != maxIncludeDepth+1 {
		t.Errorf("%d options, want %d", n, maxIncludeDepth+1)
	}
	if w := set.Warnings(); len(w) != 1 || !strings.HasPrefix(w[0].Error(), "/r.cnf:3: skipping") {
		t.Errorf("warnings %v", w)
	}
}

func TestSearchOrder(t *testing.T) {
	files := map[string]string{
		"/etc/my.cnf":       "[a]\nfrom=etc\n",
		"/etc/mysql/my.cnf": "[a]\nfrom=etc-mysql\n",
		"/mh/my.cnf":        "[a]\nfrom=mysql-home\n",
		"/mdh/my.cnf":       "[a]\nfrom=mariadb-home\n",
		"/x/extra.cnf":      "[a]\nfrom=extra\n[a.s]\nfrom=extra-s\n",
		"/home/u/.my.cnf":   "[a]\nfrom=home\n",
	}
	sys := []string{"/etc/", "/etc/mysql/"}
	tests := []struct {
		name string
		src  Sources
		env  map[string]string
		want []string
	}{
		{"system and home", Sources{}, map[string]string{"HOME": "/home/u"},
			[]string{"etc", "etc-mysql", "home"}},
		{"home from Sources", Sources{Home: "/home/u"}, nil, []string{"etc", "etc-mysql", "home"}},
		{"MYSQL_HOME and extra", Sources{ExtraFile: "/x/extra.cnf", Home: "/home/u"}, map[string]string{"MYSQL_HOME": "/mh"},
			[]string{"etc", "etc-mysql", "mysql-home", "extra", "home"}},
		{"MARIADB_HOME wins", Sources{}, map[string]string{"MYSQL_HOME": "/mh", "MARIADB_HOME": "/mdh"},
			[]string{"etc", "etc-mysql", "mariadb-home"}},
		{"MYSQL_HOME=/etc moves /etc last", Sources{}, map[string]string{"MYSQL_HOME": "/etc"},
			[]string{"etc-mysql", "etc"}},
		{"suffix from env", Sources{ExtraFile: "/x/extra.cnf"}, map[string]string{"MYSQL_GROUP_SUFFIX": ".s"},
			[]string{"etc", "etc-mysql", "extra", "extra-s"}},
		{"defaults-file only", Sources{DefaultsFile: "/x/extra.cnf", ExtraFile: "/mh/my.cnf", Home: "/home/u"}, nil,
			[]string{"extra"}},
		{"no defaults", Sources{NoDefaults: true, Home: "/home/u"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.src.Getenv = func(k string) string { return tt.env[k] }
			set, err := load(tt.src, &memFS{files: files}, sys)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range set.Options("a") {
				got = append(got, o.Value)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRequiredFiles(t *testing.T) {
	m := &memFS{files: map[string]string{}}
	for _, src := range []Sources{{DefaultsFile: "/nope.cnf"}, {ExtraFile: "/nope.cnf"}} {
		_, err := load(src, m, nil)
		if err == nil || err.Error() != "/nope.cnf: could not open required defaults file" {
			t.Errorf("%+v: got %v", src, err)
		}
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		in   []string
		want Sources
		rest []string
	}{
		{[]string{"--no-defaults", "--defaults-file=x", "g"}, Sources{NoDefaults: true}, []string{"--defaults-file=x", "g"}},
		{[]string{"--defaults-group-suffix=.1", "--defaults-extra-file=e", "--defaults-file=f", "g"},
			Sources{DefaultsFile: "f", ExtraFile: "e", GroupSuffix: ".1"}, []string{"g"}},
		{[]string{"--defaults-file=f", "--defaults-file=g", "x"}, Sources{DefaultsFile: "f"}, []string{"--defaults-file=g", "x"}},
		{[]string{"g", "--defaults-file=f"}, Sources{}, []string{"g", "--defaults-file=f"}},
		{[]string{"--defaults-file="}, Sources{DefaultsFile: "./"}, nil},
		{nil, Sources{}, nil},
	}
	if _, _, err := ParseArgs([]string{"--defaults-extra-file=e", "--defaults-file", "f"}); err == nil {
		t.Error("--defaults-file without '=' accepted")
	}
	for _, tt := range tests {
		src, rest, err := ParseArgs(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if src.DefaultsFile != tt.want.DefaultsFile || src.ExtraFile != tt.want.ExtraFile ||
			src.GroupSuffix != tt.want.GroupSuffix || src.NoDefaults != tt.want.NoDefaults || !slices.Equal(rest, tt.rest) {
			t.Errorf("ParseArgs(%q) = %+v, %q; want %+v, %q", tt.in, src, rest, tt.want, tt.rest)
		}
	}
}

func TestLookup(t *testing.T) {
	m := &memFS{files: map[string]string{"/my.cnf": "[mysqld]\nloose-innodb_buffer_pool_size=1G\n" +
		"[mariadb-10.11]\ninnodb-buffer-pool-size=2G\n[mysqld.2]\ninnodb_buffer_pool_size=3G\n[client]\ninnodb_buffer_pool_size=9G\n"}}
	set, err := load(Sources{DefaultsFile: "/my.cnf"}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := set.Lookup(ServerGroups("10.11.19"), "innodb_buffer_pool_size")
	if !ok || o.Value != "2G" || o.Line != 4 || o.Group != "mariadb-10.11" {
		t.Errorf("got %+v, %v", o, ok)
	}
	set, _ = load(Sources{DefaultsFile: "/my.cnf", GroupSuffix: ".2"}, m, nil)
	if o, _ := set.Lookup(ServerGroups(""), "loose-innodb-buffer-pool-size"); o.Value != "3G" {
		t.Errorf("with suffix .2: got %+v", o)
	}
	if _, ok := set.Lookup([]string{"mysqld"}, "port"); ok {
		t.Error("found an option that is not there")
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, v := range []string{"", "plain", "  padded  ", `a"b'c`, `back\slash\`, "new\nline\ttab\rcr\bbs", "# hash ; semi", `\s`, "\xa0nbsp\xa0"} {
		m := &memFS{files: map[string]string{"/my.cnf": "[a]\nk = " + Quote(v) + " # comment\n"}}
		set, err := load(Sources{DefaultsFile: "/my.cnf"}, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := set.Lookup([]string{"a"}, "k"); o.Value != v {
			t.Errorf("Quote(%q) = %s reads back as %q", v, Quote(v), o.Value)
		}
	}
}

func TestServerGroups(t *testing.T) {
	want := []string{"mysqld", "server", "mysqld-10.11", "mariadb", "mariadb-10.11", "mariadbd", "mariadbd-10.11", "client-server", "galera"}
	for _, v := range []string{"", "10.11", "10.11.19", "10.11.19-MariaDB-0+deb12u1"} {
		if got := ServerGroups(v); !slices.Equal(got, want) {
			t.Errorf("ServerGroups(%q) = %q", v, got)
		}
	}
}
