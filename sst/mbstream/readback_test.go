package mbstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/sst/readback"
)

// A file changed on disk after its payloads were checked against the
// stream (the test seam flips a byte before the read-back) fails Extract
// naming the file and its path.
func TestReadBackMismatch(t *testing.T) {
	t.Setenv(readback.FlipEnv, "db/t.ibd")
	big := bytes.Repeat([]byte("0123456789abcdef"), 40000)
	s := cat(pchunk("ibdata1", 0, []byte("system")), echunk("ibdata1"),
		pchunk("db/t.ibd", 0, big[:300000]), pchunk("db/t.ibd", 300000, big[300000:]), echunk("db/t.ibd"))
	dir, _, err := extractBytes(t, s)
	var bad *readback.MismatchError
	if !errors.As(err, &bad) {
		t.Fatalf("got %v, want a MismatchError", err)
	}
	for _, want := range []string{"db/t.ibd: read back from " + filepath.Join(dir, "db/t.ibd"), "CRC-32: donor"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}

// A payload written over earlier ones after a seek back replaces their
// CRCs: the read-back checks the file as it ends up.
func TestReadBackSeekBack(t *testing.T) {
	var back []byte
	back = binary.LittleEndian.AppendUint64(back, 2)
	s := cat(pchunk("f", 0, []byte("abcdef")), chunk(0, TypeSeek, "f", back, nil), pchunk("f", 2, []byte("XY")), echunk("f"))
	dir, _, err := extractBytes(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if got := readTree(t, dir)["f"]; got != "abXYef" {
		t.Fatalf("got %q", got)
	}
}
