package optionfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse reads arbitrary bytes as an option file (with includes resolved
// in memory). It must not panic, every option must carry its file and line,
// and every option whose name can be written back must read back the same
// after Quote.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/optionfiles/*/*.cnf")
	for _, s := range seeds {
		// Big seeds make the fuzzer's minimisation crawl.
		if data, err := os.ReadFile(s); err == nil && len(data) < 4500 {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"[a]\nk = v # c\n",
		"[a]\nk = \"a\\nb\\\"c\" # c\n'x'='y'\n",
		"[a]\n!include /fuzz/a.cnf\n!includedir /fuzz/inc\n",
		"[a]\n  =v\n\t=\n=",
		"[a\n",
		"k\n",
		"[a]\n!include",
		"[a]\n" + strings.Repeat("x", 4100),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := &memFS{files: map[string]string{
			"/fuzz/a.cnf":     string(data),
			"/fuzz/inc/b.cnf": "[a]\nb=1\n",
		}, limit: 64}
		set, err := load(Sources{DefaultsFile: "/fuzz/a.cnf"}, m, nil)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if !strings.HasPrefix(err.Error(), "/fuzz/") {
				t.Fatalf("error does not name the file: %v", err)
			}
		}
		lines := strings.Count(string(data), "\n") + len(data)/lineMax + 1
		for _, o := range set.All() {
			if o.File == "" || o.Line < 1 {
				t.Fatalf("option without a position: %+v", o)
			}
			if o.File == "/fuzz/a.cnf" && o.Line > lines {
				t.Fatalf("line %d beyond the %d of the input", o.Line, lines)
			}
			if !o.HasValue && o.Value != "" {
				t.Fatalf("bare option with a value: %+v", o)
			}
			checkRoundTrip(t, o)
		}
	})
}

// checkRoundTrip writes o back as "name = Quote(value)" and reads it again.
func checkRoundTrip(t *testing.T, o Option) {
	name := o.Name
	if name == "" || strings.ContainsAny(name, "=#'\"\\\x00\n") || strings.ContainsAny(name[:1], "[!;") ||
		isSpace(name[0]) || isSpace(name[len(name)-1]) {
		return
	}
	line := name
	if o.HasValue {
		line += " = " + Quote(o.Value) + " # round trip"
	}
	if len(line) >= lineMax-1 || strings.IndexByte(o.Value, 0) >= 0 {
		return
	}
	m := &memFS{files: map[string]string{"/rt.cnf": "[g]\n" + line + "\n"}}
	set, err := load(Sources{DefaultsFile: "/rt.cnf"}, m, nil)
	if err != nil {
		t.Fatalf("round trip of %q: %v", line, err)
	}
	got := set.Options("g")
	if len(got) != 1 || got[0].Name != o.Name || got[0].Value != o.Value || got[0].HasValue != o.HasValue || got[0].Line != 2 {
		t.Fatalf("round trip of %+v via %q gave %+v", o, line, got)
	}
}
