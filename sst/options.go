package sst

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/galera-supervisor/galera-supervisor/optionfile"
)

// Options looks option-file values up the way the stock scripts' parse_cnf
// does: groups in order, the last occurrence of name within a group, and
// the first group with a non-empty value wins. Names use '-' (the lookup
// normalises '_'). The group "--mysqld" means all of the server's groups.
type Options interface {
	Lookup(groups []string, name string) (string, bool)
}

// OptionsFunc adapts a function to Options.
type OptionsFunc func(groups []string, name string) (string, bool)

// Lookup calls f.
func (f OptionsFunc) Lookup(groups []string, name string) (string, bool) { return f(groups, name) }

// Groups the SST options are read from.
var (
	SSTGroups    = []string{"sst"}
	ServerGroups = []string{"--mysqld"}
	EncGroups    = []string{"--mysqld", "sst"} // the rsync script's encgroups
)

// PrintDefaults reads option files through my_print_defaults, as the stock
// scripts do, so its semantics (includes, suffixes, !includedir) are the
// server's own. Each group is read once.
type PrintDefaults struct {
	Binary              string // default "my_print_defaults"
	DefaultsFile        string
	DefaultsExtraFile   string
	DefaultsGroupSuffix string
	NoDefaults          bool

	mu    sync.Mutex
	cache map[string]map[string]string
	errs  map[string]error
}

// NewPrintDefaults reads the option files named by the SST command line.
func NewPrintDefaults(a *Args) *PrintDefaults {
	return &PrintDefaults{DefaultsFile: a.DefaultsFile, DefaultsExtraFile: a.DefaultsExtraFile, DefaultsGroupSuffix: a.DefaultsGroupSuffix}
}

// Lookup implements Options.
func (p *PrintDefaults) Lookup(groups []string, name string) (string, bool) {
	name = normFlag(name)
	found := false
	for _, g := range groups {
		vals, err := p.group(g)
		if err != nil {
			continue
		}
		if v, ok := vals[name]; ok {
			if v != "" {
				return v, true
			}
			found = true
		}
	}
	return "", found
}

// Err reports the first failure to run my_print_defaults, if any.
func (p *PrintDefaults) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for g, err := range p.errs {
		return fmt.Errorf("read option group %s: %w", g, err)
	}
	return nil
}

func (p *PrintDefaults) group(g string) (map[string]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v, ok := p.cache[g]; ok {
		return v, nil
	}
	if err, ok := p.errs[g]; ok {
		return nil, err
	}
	if p.cache == nil {
		p.cache, p.errs = map[string]map[string]string{}, map[string]error{}
	}
	bin := p.Binary
	if bin == "" {
		bin = "my_print_defaults"
	}
	var args []string
	if p.NoDefaults {
		args = append(args, "--no-defaults")
	}
	if p.DefaultsFile != "" {
		args = append(args, "--defaults-file="+p.DefaultsFile)
	}
	if p.DefaultsExtraFile != "" {
		args = append(args, "--defaults-extra-file="+p.DefaultsExtraFile)
	}
	if p.DefaultsGroupSuffix != "" {
		args = append(args, "--defaults-group-suffix="+p.DefaultsGroupSuffix)
	}
	args = append(args, g)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(context.Background(), bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		p.errs[g] = err
		return nil, err
	}
	vals := ParseDefaultsOutput(out)
	p.cache[g] = vals
	return vals, nil
}

// ParseDefaultsOutput turns my_print_defaults' "--name=value" lines into a
// map; later lines override earlier ones; a bare "--name" has value "1"
// since it enables a boolean.
func ParseDefaultsOutput(out []byte) map[string]string {
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "--") {
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if !ok {
			val = "1"
		}
		vals[normFlag(name)] = val
	}
	return vals
}

// MapOptions serves lookups from a fixed map of group → name → value; for
// tests and for callers that already hold the parsed files.
type MapOptions map[string]map[string]string

// Lookup implements Options.
func (m MapOptions) Lookup(groups []string, name string) (string, bool) {
	name = normFlag(name)
	found := false
	for _, g := range groups {
		if v, ok := m[g][name]; ok {
			if v != "" {
				return v, true
			}
			found = true
		}
	}
	return "", found
}

// FileOptions serves lookups from option files read by package optionfile,
// with parse_cnf's precedence across groups.
type FileOptions struct{ Set *optionfile.Set }

// LoadOptions reads the option files named by the SST command line.
func LoadOptions(a *Args) (*FileOptions, error) {
	set, err := optionfile.Load(a.sources())
	if err != nil {
		return nil, Errorf(EINVAL, "sst: read option files: %w", err)
	}
	return &FileOptions{Set: set}, nil
}

func (a *Args) sources() optionfile.Sources {
	return optionfile.Sources{DefaultsFile: a.DefaultsFile, ExtraFile: a.DefaultsExtraFile, GroupSuffix: a.DefaultsGroupSuffix}
}

// EnvOptions names, in mariadbd's environment and so in the SST's, the
// supervisor's snapshot of its last good option files ([sst] and the server
// groups). The SST reads its options from there rather than from the files,
// which may hold an edit the supervisor refused.
const EnvOptions = "GALERA_SUPERVISOR_OPTIONS"

// SnapshotGroups are the groups a snapshot holds: those the SST methods
// read. [client] and its passwords stay out.
func SnapshotGroups() []string {
	return append([]string{"sst"}, optionfile.ServerGroups("")...)
}

// LoadSnapshot reads the snapshot at path. ok is false when it was read
// from other option files than a's --defaults-* name: an SST run by hand
// with a stale environment reads its own files.
func LoadSnapshot(path string, a *Args) (o *FileOptions, ok bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("read option snapshot $%s: %w", EnvOptions, err)
	}
	set, err := optionfile.ParseSnapshot(path, data)
	if err != nil {
		return nil, false, err
	}
	if !set.SameFiles(a.sources()) {
		return nil, false, nil
	}
	return &FileOptions{Set: set}, true, nil
}

// Lookup implements Options.
func (o *FileOptions) Lookup(groups []string, name string) (string, bool) {
	found := false
	for _, g := range groups {
		gs := []string{g}
		if g == "--mysqld" {
			gs = optionfile.ServerGroups("")
		}
		opt, ok := o.Set.Lookup(gs, name)
		if !ok {
			continue
		}
		v := opt.Value
		if !opt.HasValue {
			v = "1"
		}
		if v != "" {
			return v, true
		}
		found = true
	}
	return "", found
}
