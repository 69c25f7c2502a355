package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestOperationsGuide keeps docs/operations.md in step with what it
// documents: its configuration blocks are the example files the package
// ships, its exit-code table has every code "help run" lists, and its
// decision table every decision.
func TestOperationsGuide(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	examples, _ := filepath.Glob("../../packaging/examples/*.cnf")
	if len(examples) == 0 {
		t.Fatal("no packaging/examples/*.cnf")
	}
	for _, f := range examples {
		e, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(doc, "```ini\n"+string(e)+"```\n") {
			t.Errorf("docs/operations.md has no ini block equal to %s", f)
		}
	}

	long := cmdRun().long
	_, codes, ok := strings.Cut(long, "\nExit codes")
	if !ok {
		t.Fatal("help run has no Exit codes section")
	}
	codes, _, _ = strings.Cut(codes, "\n\n")
	found := 0
	for _, m := range regexp.MustCompile(`(?m)^  (\d+) `).FindAllStringSubmatch(codes, -1) {
		found++
		if !strings.Contains(doc, "\n| "+m[1]+" | ") {
			t.Errorf("docs/operations.md: exit code %s of help run is not in the table", m[1])
		}
	}
	if found < 9 {
		t.Errorf("help run lists %d exit codes, want 9 or more:\n%s", found, codes)
	}
	for _, d := range []string{"join", "wait", "pc-recovery", "give up", "bootstrap"} {
		if !strings.Contains(doc, "\n| "+d+" | ") {
			t.Errorf("docs/operations.md: decision %q is not in the table", d)
		}
	}
}
