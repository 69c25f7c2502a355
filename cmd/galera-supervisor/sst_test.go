package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestSSTDispatch(t *testing.T) {
	for _, tt := range []struct {
		argv []string
		exit int
	}{
		// argv[0] selects the method; the datadir is missing: ENOENT.
		{[]string{"/usr/bin/wsrep_sst_native-copy", "--role", "joiner", "--address", "127.0.0.1", "--datadir", "/nonexistent/gs"}, 2},
		{[]string{"galera-supervisor", "sst", "--role", "joiner", "--address", "127.0.0.1", "--datadir", "/nonexistent/gs"}, 2},
		{[]string{"galera-supervisor", "sst", "--method", "no-such", "--role", "joiner", "--address", "h", "--datadir", "/tmp"}, 22},
		{[]string{"wsrep_sst_no-such", "--role", "joiner"}, 22},
		{[]string{"wsrep_sst_native-copy", "--role", "joiner", "--datadir", "/tmp"}, 22}, // no address
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), tt.argv, &out, &errb)
		if got := exitCode(err); got != tt.exit {
			t.Errorf("%q: exit %d, want %d (%v)", tt.argv, got, tt.exit, err)
		}
		if out.Len() != 0 {
			t.Errorf("%q: stdout %q; only protocol lines may go there", tt.argv, out.String())
		}
		if tt.exit != 0 && !strings.Contains(errb.String(), "WSREP_SST: [ERROR]") {
			t.Errorf("%q: stderr %q", tt.argv, errb.String())
		}
	}
}

func TestSSTMethodArg(t *testing.T) {
	m, rest := sstMethodArg([]string{"--role", "donor", "--method=native-backup", "--mysqld-args", "--method", "x"})
	if m != "native-backup" || strings.Join(rest, " ") != "--role donor --mysqld-args --method x" {
		t.Fatalf("got %q %q", m, rest)
	}
	if m, _ := sstMethodArg(nil); m != "native-copy" {
		t.Fatalf("default method %q", m)
	}
}

func TestHelpSST(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"galera-supervisor", "help", "sst"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"native-copy", "ready", "flush tables", "EALREADY", "tcert", "WSREP_SST_OPT_AUTH"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help sst lacks %q", want)
		}
	}
}
