package transfer

import (
	"bytes"
	"context"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"

	"github.com/galera-supervisor/galera-supervisor/notify/logging/logtest"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pair sets up a joiner and a donor session on loopback.
func pair(t testing.TB, host string, jo, do Options) (joiner, donor *Session) {
	t.Helper()
	j, d, jerr, derr := tryPair(t, host, jo, do)
	if jerr != nil || derr != nil {
		t.Fatalf("session: joiner: %v; donor: %v", jerr, derr)
	}
	return j, d
}

func tryPair(t testing.TB, host string, jo, do Options) (joiner, donor *Session, jerr, derr error) {
	t.Helper()
	ctx := testCtx(t)
	if jo.Log == nil {
		jo.Log = logtest.New(t)
	}
	if do.Log == nil {
		do.Log = logtest.New(t)
	}
	l, err := Listen(ctx, Address{Host: host, Port: 0}, jo)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	type res struct {
		s   *Session
		err error
	}
	dc := make(chan res, 1)
	go func() {
		s, err := Dial(ctx, l.Addr(), l.Secret(), do)
		dc <- res{s, err}
	}()
	joiner, jerr = l.Accept(ctx)
	if jerr != nil {
		l.Close() // unblocks a donor waiting in its handshake
	}
	r := <-dc
	donor, derr = r.s, r.err
	if joiner != nil {
		t.Cleanup(func() { joiner.Close() })
	}
	if donor != nil {
		t.Cleanup(func() { donor.Close() })
	}
	return
}

func writeFile(t testing.TB, path string, size int, seed uint64) {
	t.Helper()
	r := mrand.New(mrand.NewPCG(seed, seed))
	b := make([]byte, size)
	for i := range b {
		// Compressible but not trivial, like InnoDB pages.
		if i%64 < 40 {
			b[i] = byte(r.IntN(16))
		} else {
			b[i] = byte(r.Uint32())
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

// makeTree builds a small datadir-like tree; chunk-boundary sizes matter.
func makeTree(t testing.TB, dir string, chunk int) {
	t.Helper()
	sizes := map[string]int{
		"ibdata1":            3*chunk + 17,
		"ib_logfile0":        chunk,
		"mysql/user.MYD":     1000,
		"mysql/db.frm":       chunk + 1,
		"bench/t.ibd":        9*chunk - 1,
		"bench/empty.ibd":    0,
		"a/b/c/deep.bin":     123,
		"aria_log_control":   52,
		"bench/odd name.txt": 5,
	}
	i := uint64(1)
	for name, size := range sizes {
		writeFile(t, filepath.Join(dir, name), size, i)
		i++
	}
	if err := os.MkdirAll(filepath.Join(dir, "emptydir"), 0o700); err != nil {
		t.Fatal(err)
	}
}

// sendTree sends every directory and file under dir.
func sendTree(ctx context.Context, t testing.TB, s *Session, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return s.SendDir(ctx, rel, info.Mode())
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return s.SendSymlink(ctx, rel, target)
		default:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			total += info.Size()
			return s.SendFile(ctx, rel, f)
		}
	})
	if err != nil {
		t.Fatalf("send tree: %v", err)
	}
	return total
}

func compareTrees(t testing.TB, want, got string) {
	t.Helper()
	n := 0
	filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(want, p)
		q := filepath.Join(got, rel)
		wi, _ := os.Lstat(p)
		gi, err := os.Lstat(q)
		if err != nil {
			t.Errorf("missing %s: %v", rel, err)
			return nil
		}
		if wi.Mode().Type() != gi.Mode().Type() {
			t.Errorf("%s: type %v, want %v", rel, gi.Mode().Type(), wi.Mode().Type())
			return nil
		}
		if rel != "." && wi.Mode().Perm() != gi.Mode().Perm() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode().Perm(), wi.Mode().Perm())
		}
		if wi.Mode().IsRegular() {
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(q)
			if !bytes.Equal(a, b) {
				t.Errorf("%s: content differs (%d vs %d bytes)", rel, len(b), len(a))
			}
			n++
		}
		return nil
	})
	if n == 0 {
		t.Fatal("no files compared")
	}
}

// certs is a test PKI: a CA with a joiner and a donor certificate, and a
// rogue CA with its own client certificate.
type certs struct {
	dir                                      string
	ca, joinerCert, joinerKey                string
	donorCert, donorKey, rogueCert, rogueKey string
	rogueCA                                  string
	// Revocation lists, signed by the CA, of the donor's and the joiner's
	// certificates; and one of the joiner's signed by the rogue CA.
	donorCRL, joinerCRL, rogueCRL string
}

func makeCerts(t testing.TB) *certs {
	t.Helper()
	dir := t.TempDir()
	c := &certs{dir: dir}
	ca := testutil.MustCA(t, dir, "ca")
	c.ca = ca.File
	c.joinerCert, c.joinerKey = ca.MustIssue(t, dir, "joiner", "127.0.0.1", "::1")
	c.donorCert, c.donorKey = ca.MustIssue(t, dir, "donor", "127.0.0.1", "::1")
	rogue := testutil.MustCA(t, dir, "rogue-ca")
	c.rogueCA = rogue.File
	c.rogueCert, c.rogueKey = rogue.MustIssue(t, dir, "rogue", "127.0.0.1", "::1")
	c.donorCRL = ca.MustRevoke(t, dir, "donor.crl", c.donorCert)
	c.joinerCRL = ca.MustRevoke(t, dir, "joiner.crl", c.joinerCert)
	c.rogueCRL = rogue.MustRevoke(t, dir, "rogue.crl", c.joinerCert)
	return c
}

func writeBoth(t testing.TB, path, cert, key string) {
	a, _ := os.ReadFile(cert)
	b, _ := os.ReadFile(key)
	if err := os.WriteFile(path, append(a, b...), 0o600); err != nil {
		t.Fatal(err)
	}
}
