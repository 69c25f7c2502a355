package sst

import (
	"fmt"
	"os"

	"github.com/galera-supervisor/galera-supervisor/optionfile"
	"github.com/galera-supervisor/galera-supervisor/schema"
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

// LoadSnapshot reads the snapshot at path. ok is false when it was read
// from other option files than a's --defaults-* name: an SST run by hand
// with a stale environment reads its own files.
func LoadSnapshot(path string, a *Args) (o *FileOptions, ok bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("read option snapshot $%s: %w", schema.EnvOptions, err)
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
