package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
)

const manDir = "../../packaging"

// TestManPage: the packaged man pages are what the help texts generate, one
// per command and no stale one, and groff formats each without a warning.
func TestManPage(t *testing.T) {
	pages := manPages()
	if len(pages) != len(commands())+1 {
		t.Fatalf("%d pages for %d commands", len(pages), len(commands()))
	}
	for name, page := range pages {
		testutil.Golden(t, filepath.Join(manDir, name), []byte(page)) // the help texts' man page
	}
	committed, err := filepath.Glob(filepath.Join(manDir, "*.8"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range committed {
		if _, ok := pages[filepath.Base(path)]; !ok {
			t.Errorf("%s belongs to no command: remove it", path)
		}
	}
	main := pages["galera-supervisor.8"]
	for _, cmd := range commands() {
		page := pages["galera-supervisor-"+cmd.name+".8"]
		if !strings.Contains(main, `.BR galera\-supervisor\-`+cmd.name+" (8)") {
			t.Errorf("galera-supervisor(8) does not point to galera-supervisor-%s(8)", cmd.name)
		}
		if !strings.Contains(page, ".SH SYNOPSIS\n.B galera-supervisor "+cmd.name+"\n") {
			t.Errorf("galera-supervisor-%s(8) has no synopsis", cmd.name)
		}
		// Every option --help lists is on the page.
		for _, o := range commandOptions(cmd) {
			if !strings.Contains(page, `\-\-`+o) {
				t.Errorf("galera-supervisor-%s(8) lacks --%s", cmd.name, o)
			}
		}
	}

	groff, err := exec.LookPath("groff")
	if err != nil {
		// make deps installs it; outside make, only GS_TEST_REAL=1 insists.
		if os.Getenv("GS_TEST_REAL") == "1" {
			t.Fatalf("groff (package groff-base) is needed to check the man pages: %v", err)
		}
		t.Skipf("groff not installed: %v", err)
	}
	for name := range pages {
		path := filepath.Join(manDir, name)
		out, err := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", path).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff on %s: %v\n%s", path, err, out)
		}
	}
}
