package supervisor

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseRecoveredSamples(t *testing.T) {
	// Real stderr of mariadbd 10.11.19 --wsrep-recover --disable-log-error.
	tests := []struct {
		file string
		want string
	}{
		{"fresh.log", "00000000-0000-0000-0000-000000000000:-1"},
		{"crashed-gtid.log", "8fa998c1-e59b-11f1-82b9-9e02990180a0:4,0-0-0"},
		{"unknown-option.log", "8fa998c1-e59b-11f1-82b9-9e02990180a0:4,0-0-0"},
	}
	for _, tt := range tests {
		f, err := os.Open("testdata/recover/" + tt.file)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseRecovered(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", tt.file, err)
			continue
		}
		if p.String() != tt.want {
			t.Errorf("%s: got %s, want %s", tt.file, p, tt.want)
		}
	}
}

func TestParseRecovered(t *testing.T) {
	const u = "8fa998c1-e59b-11f1-82b9-9e02990180a0"
	tests := []struct {
		in, want, err string
	}{
		{"x\n2024-01-01 0 [Note] WSREP: Recovered position: " + u + ":12\n", u + ":12", ""},
		{"WSREP: Recovered position: " + u + ":1\nWSREP: Recovered position: " + u + ":2,1-2-3\n", u + ":2,1-2-3", ""},
		{"[ERROR] Aborting\n", "", "no \"WSREP: Recovered position\""},
		{"WSREP: Recovered position: " + u + "\n", "", "want uuid:seqno"},
		{"WSREP: Recovered position: " + u + ":x\n", "", "bad seqno"},
		{"WSREP: Recovered position: " + u + ":3,1-2\n", "", "bad gtid"},
		{"WSREP: Recovered position:\n", "", "empty recovered position"},
	}
	for _, tt := range tests {
		p, err := ParseRecovered(strings.NewReader(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || p.String() != tt.want {
			t.Errorf("%q: got %v, %v; want %s", tt.in, p, err, tt.want)
		}
	}
	_, err := ParseRecovered(strings.NewReader(""))
	if !errors.Is(err, ErrNoRecoveredPosition) {
		t.Errorf("empty: %v", err)
	}
}

func FuzzRecovered(f *testing.F) {
	for _, n := range []string{"fresh.log", "crashed-gtid.log"} {
		if b, err := os.ReadFile("testdata/recover/" + n); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("WSREP: Recovered position: 8fa998c1-e59b-11f1-82b9-9e02990180a0:-1,0-1-2\n")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseRecovered(strings.NewReader(s))
		if err != nil {
			return
		}
		p2, err := ParsePosition(p.String())
		if err != nil || p2 != p {
			t.Fatalf("round trip %v: %v %v", p, p2, err)
		}
	})
}

func TestPositionKnown(t *testing.T) {
	for _, tc := range []struct {
		pos  string
		want bool
	}{
		{"00000000-0000-0000-0000-000000000000:-1", false},
		{"00000000-0000-0000-0000-000000000000:-1,0-1-0", false},
		{"00000000-0000-0000-0000-000000000000:-1,0-1-7", true},
		{"00000000-0000-0000-0000-000000000000:3", true},
		{"8fa998c1-e59b-11f1-82b9-9e02990180a0:-1", true},
		{"8fa998c1-e59b-11f1-82b9-9e02990180a0:4,0-0-0", true},
	} {
		p, err := ParsePosition(tc.pos)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Known(); got != tc.want {
			t.Errorf("%s: Known() = %v, want %v", tc.pos, got, tc.want)
		}
	}
}
