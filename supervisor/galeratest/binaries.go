package galeratest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// NativeMethods are the SST methods galera-supervisor provides, each found
// by mariadbd as a wsrep_sst_<method> link in its PATH.
var NativeMethods = []string{"native-copy", "native-backup"}

var binaries struct {
	once sync.Once
	dir  string
	err  error
}

// Binaries builds galera-supervisor once per test process into
// Root/bin-<pid>, which mariadbd (user mysql) can traverse, with a
// wsrep_sst_<method> link for each native method, and returns the
// directory for Config.PathPrepend. RemoveBinaries removes it; New sweeps
// those of dead processes.
func Binaries(t testing.TB) string {
	t.Helper()
	b := &binaries
	b.once.Do(func() {
		dir := filepath.Join(Root, fmt.Sprintf("bin-%d", os.Getpid()))
		if b.err = os.MkdirAll(dir, 0o755); b.err != nil {
			return
		}
		for _, d := range []string{Root, dir} {
			if b.err = os.Chmod(d, 0o755); b.err != nil {
				return
			}
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = "/usr/local/go/bin/go"
		}
		cmd := exec.Command(goBin, "build", "-o", filepath.Join(dir, "galera-supervisor"), "github.com/galera-supervisor/galera-supervisor/cmd/galera-supervisor")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build galera-supervisor: %w\n%s", err, out)
			return
		}
		for _, m := range NativeMethods {
			if b.err = os.Symlink("galera-supervisor", filepath.Join(dir, "wsrep_sst_"+m)); b.err != nil {
				return
			}
		}
		b.dir = dir
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.dir
}

// RemoveBinaries removes what Binaries built; call it from TestMain.
func RemoveBinaries() {
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
}
