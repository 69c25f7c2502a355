// Package testutil holds the helpers that the tests of several packages
// share: fatal errors, golden files with one -update flag, gzip files,
// certificate authorities and a tampering TCP proxy. Only tests import it.
package testutil

import (
	"bytes"
	"compress/gzip"
	"flag"
	"io"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files (testdata/, the man pages)")

// Must stops the test on err.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Golden compares got with the file at path; go test -update rewrites it.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		Must(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run '%s' -update writes it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -run '%s' -update rewrites it):\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

// Gunzip returns the content of the gzip file at path.
func Gunzip(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	Must(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(b)
}
