package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

const manFile = "../../packaging/galera-supervisor.8"

// TestManPage: the packaged man page is what the help texts generate, and
// groff formats it without a warning.
func TestManPage(t *testing.T) {
	var b bytes.Buffer
	manPage(&b)
	if *update {
		if err := os.WriteFile(manFile, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(manFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Fatalf("%s is out of date with the help texts: go test ./cmd/galera-supervisor -run TestManPage -update", manFile)
	}
	for _, cmd := range commands() {
		if !strings.Contains(b.String(), ".SS "+cmd.name+"\n") {
			t.Errorf("no section for command %s", cmd.name)
		}
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		// make deps installs it; outside make, only GS_TEST_REAL=1 insists.
		if os.Getenv("GS_TEST_REAL") == "1" {
			t.Fatalf("groff (package groff-base) is needed to check the man page: %v", err)
		}
		t.Skipf("groff not installed: %v", err)
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", manFile)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("groff on %s: %v\n%s", manFile, err, out)
	}
}
