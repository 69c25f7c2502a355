package mbstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/galeratest"
)

// treeDigest maps every entry under dir to its type and, for files, size
// and SHA-256, so two extractions compare byte for byte.
func treeDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		switch {
		case d.IsDir():
			m[rel] = "dir"
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			n, err := io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			m[rel] = fmt.Sprintf("file %d %s", n, hex.EncodeToString(h.Sum(nil)))
		default:
			m[rel] = "other " + d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func compareTrees(t *testing.T, what string, a, b map[string]string) {
	t.Helper()
	var names []string
	for k := range a {
		names = append(names, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	bad := 0
	for _, k := range names {
		if a[k] != b[k] {
			bad++
			if bad <= 20 {
				t.Errorf("%s: %s: mbstream -x %q, ours %q", what, k, a[k], b[k])
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d of %d entries differ", what, bad, len(names))
	}
	t.Logf("%s: %d entries identical", what, len(names))
}

// realExtract runs the real mbstream -x on stream in a fresh directory.
func realExtract(t *testing.T, stream string, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd := exec.Command("mbstream", "-x", "-C", dir)
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mbstream -x: %v\n%s", err, out)
	}
}

func ourExtract(t *testing.T, stream string, dir string) Stats {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	st, err := Extract(context.Background(), in, dir, Options{})
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	return st
}

// TestRealMbstreamDifferential extracts a stream made by the real
// mariadb-backup from a running node with mbstream -x and with Extract,
// and a stream made by our Writer with mbstream -x, and compares the trees.
func TestRealMbstreamDifferential(t *testing.T) {
	galeratest.Require(t)
	if _, err := exec.LookPath("mbstream"); err != nil {
		t.Fatalf("mbstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := galeratest.NewTest(t, galeratest.Config{Nodes: 1})
	n := c.Node(1)
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.CreateSampleTables(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.LoadData(ctx, 40<<20); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(c.Dir(), "mbstream-diff")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	stream := filepath.Join(work, "backup.mbstream")
	out, err := os.Create(stream)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "mariadb-backup", "--defaults-file="+n.ConfigFile, "--backup",
		"--no-version-check", "--parallel=2", "--galera-info", "--stream=mbstream",
		"--target-dir="+filepath.Join(work, "target"), "--datadir="+n.DataDir,
		"--user="+galeratest.User, "--socket="+n.Socket)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+galeratest.Password)
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mariadb-backup --backup: %v\n%s", err, stderr.String())
	}
	out.Close()
	fi, _ := os.Stat(stream)
	t.Logf("mariadb-backup stream: %d bytes", fi.Size())

	realExtract(t, stream, filepath.Join(work, "A"))
	st := ourExtract(t, stream, filepath.Join(work, "B"))
	t.Logf("ours: %+v", st)
	a := treeDigest(t, filepath.Join(work, "A"))
	b := treeDigest(t, filepath.Join(work, "B"))
	// A tablespace written by bulk load while the backup ran comes as
	// t.new, which --prepare renames; either is the table.
	for _, want := range []string{"bench/t.", "gstest/kinds.", "gstest/aria.MAD", "gstest/myisam.MYD", "xtrabackup_galera_info", "ibdata1"} {
		found := false
		for k, v := range a {
			if strings.HasPrefix(k, want) && strings.HasPrefix(v, "file ") && (strings.HasSuffix(want, ".") == (strings.HasSuffix(k, ".ibd") || strings.HasSuffix(k, ".new"))) {
				found = true
			}
		}
		if !found {
			t.Errorf("the real extraction lacks %s* (%d entries)", want, len(a))
		}
	}
	compareTrees(t, "mariadb-backup stream", a, b)

	// Our writer's stream, read by the real mbstream -x.
	ws := filepath.Join(work, "ours.mbstream")
	wf, err := os.Create(ws)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(wf)
	rng := rand.New(rand.NewPCG(7, 9))
	big := make([]byte, 3*ChunkSize/2+12345)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	for _, step := range []error{
		w.Payload("db1/t.ibd", big[:1000]),
		w.Payload("ibdata1", []byte("system tablespace")),
		w.Payload("db1/t.ibd", big[1000:5000]),
		w.Close("ibdata1"),
		w.Payload("db1/t.ibd", big[5000:]),
		w.Close("db1/t.ibd"),
		w.Close("empty_file"),
		w.WriteFile("db2/big", bytes.NewReader(big)),
		w.Bytes("xtrabackup_galera_info", []byte("00000000-0000-0000-0000-000000000000:-1 0\n")),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	wf.Close()
	realExtract(t, ws, filepath.Join(work, "C"))
	ourExtract(t, ws, filepath.Join(work, "D"))
	c1 := treeDigest(t, filepath.Join(work, "C"))
	if len(c1) != 7 {
		t.Errorf("mbstream -x of our stream made %d entries, want 7: %v", len(c1), c1)
	}
	compareTrees(t, "our writer's stream", c1, treeDigest(t, filepath.Join(work, "D")))
	if got, _ := os.ReadFile(filepath.Join(work, "C", "db2", "big")); !bytes.Equal(got, big) {
		t.Errorf("mbstream -x of our db2/big: %d bytes, differs from the %d written", len(got), len(big))
	}
}
