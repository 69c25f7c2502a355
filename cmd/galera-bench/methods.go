package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// method is one way to join node2.
type method struct {
	Name   string // as shown: "mariabackup+lz4"
	SST    string // wsrep_sst_method
	LZ4    bool
	Native bool
	Opts   map[string]string // [sst] options of this method's runs, over -sst
	// BinDir holds the wsrep_sst_native-* binaries of this method's runs
	// ("": -bin's); -baseline's runs name another build's.
	BinDir string
}

// baselineSuffix marks the runs of -baseline's build: "native-copy@baseline".
const baselineSuffix = "@baseline"

// nativeSSTs are the SST binaries a build provides, switched per run.
var nativeSSTs = []string{"wsrep_sst_native-copy", "wsrep_sst_native-backup"}

// withBaseline adds, right after each native method, the same method run by
// the build in dir, named METHOD@baseline, so that both run in the same
// rounds. A native method that build lacks is an error.
func withBaseline(ctx context.Context, ms []method, dir string) ([]method, error) {
	var out []method
	for _, m := range ms {
		out = append(out, m)
		if !m.Native {
			continue
		}
		if ok, why := nativeAvailable(ctx, dir, m.SST); !ok {
			return nil, fmt.Errorf("-baseline: %s is not available there: %s", m.SST, why)
		}
		b := m
		b.Name += baselineSuffix
		b.BinDir = dir
		out = append(out, b)
	}
	return out, nil
}

// sstOptions is the whole [sst] section for a run, with the -sst options
// on top.
func (m method) sstOptions(extra map[string]string) map[string]string {
	// Empty values delete the keys the previous run set.
	o := map[string]string{"time": "1", "compressor": "", "decompressor": ""}
	for k, v := range extra {
		o[k] = v
	}
	for k, v := range m.Opts {
		o[k] = v
	}
	if m.LZ4 {
		o["compressor"] = "lz4 -z"
		o["decompressor"] = "lz4 -d"
	}
	return o
}

var knownMethods = []struct {
	name   string
	native bool
	lz4    bool // has a "+lz4" variant
}{
	{"rsync", false, false},
	{"native-copy", true, true},
	{"mariabackup", false, true},
	{"native-backup", true, true},
}

// nativeAvailable says whether wsrep_sst_<name> in binDir is a built method
// rather than a placeholder.
func nativeAvailable(ctx context.Context, binDir, name string) (bool, string) {
	path := filepath.Join(binDir, "wsrep_sst_"+name)
	if _, err := os.Stat(path); err != nil {
		return false, fmt.Sprintf("%s: %v (run make build)", path, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--help")
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	// The skeleton's placeholder says "not built yet"; the method registry
	// answers "unknown method" for a method that is not there yet.
	if o := out.String(); strings.Contains(o, "not built yet") || strings.Contains(o, fmt.Sprintf("unknown method %q", name)) {
		return false, fmt.Sprintf("%s says %q", path, strings.TrimSpace(out.String()))
	}
	return true, ""
}

// resolveMethods turns -methods into the runs to make. "all" is every known
// method that is available; a native method named explicitly but not built
// is an error, so that a typo or a missing make build does not go unnoticed.
func resolveMethods(ctx context.Context, names []string, lz4 bool, binDir string, logf func(string, ...any)) ([]method, error) {
	var out []method
	add := func(base string, withLZ4 bool) {
		for _, k := range knownMethods {
			if k.name == base {
				out = append(out, method{Name: base, SST: base, Native: k.native})
				if withLZ4 && k.lz4 {
					out = append(out, method{Name: base + "+lz4", SST: base, LZ4: true, Native: k.native})
				}
			}
		}
	}
	for _, n := range names {
		if n == "all" {
			for _, k := range knownMethods {
				if k.native {
					if ok, why := nativeAvailable(ctx, binDir, k.name); !ok {
						logf("skipping %s: %s", k.name, why)
						continue
					}
				}
				add(k.name, lz4)
			}
			continue
		}
		base, suffix, _ := strings.Cut(n, "+")
		var k *struct {
			name   string
			native bool
			lz4    bool
		}
		for i := range knownMethods {
			if knownMethods[i].name == base {
				k = &knownMethods[i]
			}
		}
		if k == nil {
			return nil, fmt.Errorf("-methods: unknown method %q (want rsync, native-copy, mariabackup, native-backup, optionally +lz4)", n)
		}
		if suffix != "" && (suffix != "lz4" || !k.lz4) {
			return nil, fmt.Errorf("-methods: %q has no variant %q", base, suffix)
		}
		if k.native {
			if ok, why := nativeAvailable(ctx, binDir, k.name); !ok {
				return nil, fmt.Errorf("-methods: %s is not available: %s", k.name, why)
			}
		}
		if suffix == "lz4" {
			out = append(out, method{Name: n, SST: base, LZ4: true, Native: k.native})
			continue
		}
		add(base, lz4)
	}
	seen := map[string]bool{}
	uniq := out[:0]
	for _, m := range out {
		if !seen[m.Name] {
			seen[m.Name] = true
			uniq = append(uniq, m)
		}
	}
	return uniq, nil
}
