package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestAllocatedCountsLinksOnce: a file linked twice under the dir is one
// file's blocks, as du says; the delta bench's extra-disk peak read 4.2 GiB
// for a 137 MB delta when the swap's links were counted twice.
func TestAllocatedCountsLinksOnce(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i*7 + 1)
	}
	if err := os.WriteFile(filepath.Join(dir, "a"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	one := allocated(dir)
	if one < 1<<20 {
		t.Fatalf("one file of 1 MiB: %d bytes allocated", one)
	}
	if err := os.MkdirAll(filepath.Join(dir, "staged"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "staged", "a")); err != nil {
		t.Fatal(err)
	}
	// Only the new directory's own block may be added, not the file again.
	if got := allocated(dir) - one; got > 64<<10 {
		t.Errorf("a second link added %d bytes", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "b"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := allocated(dir); got < 2*one {
		t.Errorf("two files: %d bytes allocated, want at least %d", got, 2*one)
	}
}
