package optionfile

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestSnapshotRoundTrip(t *testing.T) {
	m := &memFS{files: map[string]string{
		"/a.cnf": "[sst]\ntransfer-streams = 3\ntime\n[sst.n1]\nrlimit = \"1 M\"\n[mysqld]\ndatadir = /x\n[client]\npassword = secret\n",
	}}
	set, err := load(Sources{DefaultsFile: "/a.cnf", GroupSuffix: ".n1", suffixGiven: true}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := set.MarshalSnapshot("sst", "mysqld")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "secret") {
		t.Errorf("snapshot holds a group not asked for:\n%s", b)
	}
	got, err := ParseSnapshot("/run/x.json", b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Options("sst", "mysqld"), set.Options("sst", "mysqld")) {
		t.Errorf("options after a round trip:\n%+v\nwant\n%+v", got.Options("sst", "mysqld"), set.Options("sst", "mysqld"))
	}
	if o, ok := got.Lookup([]string{"sst"}, "rlimit"); !ok || o.Value != "1 M" || o.Pos() != "/a.cnf:5" {
		t.Errorf("suffixed group after a round trip: %+v %v", o, ok)
	}
	if !got.SameFiles(Sources{DefaultsFile: "/a.cnf", GroupSuffix: ".n1"}) {
		t.Error("SameFiles: false for the sources it was read from")
	}
	for _, src := range []Sources{{DefaultsFile: "/b.cnf", GroupSuffix: ".n1"}, {DefaultsFile: "/a.cnf"}, {ExtraFile: "/a.cnf", GroupSuffix: ".n1"}} {
		if got.SameFiles(src) {
			t.Errorf("SameFiles(%+v): true", src)
		}
	}
}

func TestParseSnapshotErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "/s.json: option snapshot: EOF"},
		{`{"version":2,"options":[]}`, "/s.json: option snapshot version 2, want 1"},
		{`{"version":1,"options":[]} {}`, "/s.json: option snapshot: data after the JSON object"},
		{`{"version":1,"options":[{"group":"sst","name":"x","file":"","line":1}]}`, "/s.json: option snapshot: option 1: needs a name, a file and a line, and a bare one no value"},
	} {
		_, err := ParseSnapshot("/s.json", []byte(c.in))
		if err == nil || err.Error() != c.want {
			t.Errorf("ParseSnapshot(%q): %v, want %s", c.in, err, c.want)
		}
	}
}

// FuzzParseSnapshot: any input either fails naming the file, or reads
// back to the same options after a write.
func FuzzParseSnapshot(f *testing.F) {
	f.Add([]byte(`{"version":1,"defaults_file":"/a.cnf","options":[{"group":"sst","name":"rlimit","value":"1M","file":"/a.cnf","line":2}]}`))
	f.Add([]byte(`{"version":1,"suffix":".n1","options":[{"group":"sst.n1","name":"time","bare":true,"file":"/a.cnf","line":3}]}`))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := ParseSnapshot("/s.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "/s.json: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		var raw struct{ Options []json.RawMessage }
		json.Unmarshal(data, &raw)
		all := set.All()
		if len(all) != len(raw.Options) {
			t.Fatalf("%d options from %d", len(all), len(raw.Options))
		}
		b, err := set.MarshalSnapshot(groupsOf(all)...)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseSnapshot("/s.json", b)
		if err != nil {
			t.Fatalf("re-read: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(again.All(), set.Options(groupsOf(all)...)) {
			t.Fatalf("round trip:\n%+v\nwant\n%+v", again.All(), set.Options(groupsOf(all)...))
		}
	})
}

func groupsOf(opts []Option) []string {
	var g []string
	for _, o := range opts {
		g = append(g, o.Group)
	}
	return g
}

func TestWithGroups(t *testing.T) {
	m := &memFS{files: map[string]string{"/a.cnf": "[sst]\nrlimit = 1M\n[mysqld]\ndatadir = /x\n[sst.n1]\ntime = 1\n"}}
	n := &memFS{files: map[string]string{"/a.cnf": "[sst]\nrlimit = 2M\n[mysqld]\ndatadir = /y\n"}}
	src := Sources{DefaultsFile: "/a.cnf", GroupSuffix: ".n1", suffixGiven: true}
	started, _ := load(src, m, nil)
	last, _ := load(src, n, nil)
	got := started.WithGroups(last, "sst")
	var s []string
	for _, o := range got.All() {
		s = append(s, o.Group+" "+o.Arg())
	}
	if strings.Join(s, ", ") != "mysqld --datadir=/x, sst --rlimit=2M" {
		t.Errorf("WithGroups: %s", strings.Join(s, ", "))
	}
	if o, _ := started.Lookup([]string{"sst"}, "rlimit"); o.Value != "1M" {
		t.Errorf("WithGroups changed its receiver: %+v", o)
	}
}
