package supervisor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
)

func TestGrastateGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/grastate/*.dat")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".dat")
		t.Run(name, func(t *testing.T) {
			g, err := ReadGrastate(f)
			var out []byte
			if err != nil {
				out = []byte("error: " + err.Error() + "\n")
			} else {
				out, _ = json.MarshalIndent(g, "", "  ")
				out = append(out, '\n')
			}
			testutil.Golden(t, filepath.Join("testdata", "grastate/"+name+".golden"), out)
		})
	}
}

func TestGrastateMissing(t *testing.T) {
	_, err := ReadGrastate(filepath.Join(t.TempDir(), "grastate.dat"))
	if !os.IsNotExist(err) && !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err = %v, want not exist", err)
	}
}

func TestGrastateTooLong(t *testing.T) {
	s := "uuid: 8fa998c1-e59b-11f1-82b9-9e02990180a0\nseqno: 1\n" + strings.Repeat("# pad\n", 1000)
	if _, err := ParseGrastate(strings.NewReader(s)); err == nil {
		t.Fatal("no error for an oversized grastate")
	}
}

func FuzzGrastate(f *testing.F) {
	files, _ := filepath.Glob("testdata/grastate/*.dat")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := ParseGrastate(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		if !validUUID(g.UUID) || g.Seqno < SeqnoUnknown {
			t.Fatalf("accepted invalid state %+v", g)
		}
		// What parses must round-trip through the written form.
		safe := "0"
		if g.SafeToBootstrap {
			safe = "1"
		}
		w := "# GALERA saved state\nversion: 2.1\nuuid: " + g.UUID + "\nseqno: " + strconv.FormatInt(g.Seqno, 10) + "\nsafe_to_bootstrap: " + safe + "\n"
		g2, err := ParseGrastate(strings.NewReader(w))
		if err != nil || g2.UUID != g.UUID || g2.Seqno != g.Seqno || g2.SafeToBootstrap != g.SafeToBootstrap {
			t.Fatalf("round trip of %+v: %+v, %v", g, g2, err)
		}
	})
}
