package optionfile

import (
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	old := &memFS{files: map[string]string{
		"/a.cnf": "[sst]\ntransfer-streams = 8\nrlimit = 10M\nwsrep-sst-auth = u:old\n[mysqld]\ndatadir = /x\n",
	}}
	new := &memFS{files: map[string]string{
		"/a.cnf": "[sst]\ntransfer-streams = 8\n!include /b.cnf\nwsrep-sst-auth = u:new\ntime\n[mysqld]\ndatadir = /y\n",
		"/b.cnf": "[sst]\ntransfer_streams = 3\n",
	}}
	a, err := load(Sources{DefaultsFile: "/a.cnf"}, old, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := load(Sources{DefaultsFile: "/a.cnf"}, new, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range Diff(a, b, "sst") {
		got = append(got, c.String())
	}
	want := []string{
		"[sst] rlimit: 10M -> unset (was /a.cnf:3)",
		"[sst] time: unset -> (no value) (/a.cnf:5)",
		"[sst] transfer-streams: 8 -> 3 (/b.cnf:2)",
		"[sst] wsrep-sst-auth: **** -> **** (/a.cnf:4)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := Diff(a, b, "mysqld"); len(d) != 1 || d[0].String() != "[mysqld] datadir: /x -> /y (/a.cnf:7)" {
		t.Errorf("Diff of [mysqld]: %v", d)
	}
	if d := Diff(a, a, "sst", "mysqld"); len(d) != 0 {
		t.Errorf("Diff of a set with itself: %v", d)
	}
}
