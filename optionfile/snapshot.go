package optionfile

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// A snapshot is a Set written down for another process, as JSON: the SST
// that mariadbd starts reads the supervisor's last good option files from
// it instead of the files themselves, which may hold a broken edit. Each
// option keeps the file and line it came from, for messages.
const snapshotVersion = 1

type snapshot struct {
	Version      int              `json:"version"`
	DefaultsFile string           `json:"defaults_file,omitempty"`
	ExtraFile    string           `json:"extra_file,omitempty"`
	GroupSuffix  string           `json:"group_suffix,omitempty"` // given on the command line
	Suffix       string           `json:"suffix,omitempty"`       // in effect
	NoDefaults   bool             `json:"no_defaults,omitempty"`
	Options      []snapshotOption `json:"options"`
}

type snapshotOption struct {
	Group string `json:"group"`
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
	Bare  bool   `json:"bare,omitempty"`
	File  string `json:"file"`
	Line  int    `json:"line"`
}

// MarshalSnapshot writes the options of groups (with the group suffix
// appended too) in file order, and the sources they were read from.
func (s *Set) MarshalSnapshot(groups ...string) ([]byte, error) {
	snap := snapshot{Version: snapshotVersion, GroupSuffix: s.src.GroupSuffix, Suffix: s.suffix, NoDefaults: s.src.NoDefaults,
		Options: []snapshotOption{}}
	if s.src.DefaultsFile != "" {
		snap.DefaultsFile = realPath(s.src.DefaultsFile)
	}
	if s.src.ExtraFile != "" {
		snap.ExtraFile = realPath(s.src.ExtraFile)
	}
	for _, o := range s.Options(groups...) {
		snap.Options = append(snap.Options, snapshotOption{Group: o.Group, Name: o.Name, Value: o.Value, Bare: !o.HasValue, File: o.File, Line: o.Line})
	}
	b, err := json.MarshalIndent(snap, "", "\t")
	if err != nil {
		return nil, fmt.Errorf("marshal option snapshot: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseSnapshot reads what MarshalSnapshot wrote; name is the file it came
// from, for errors.
func ParseSnapshot(name string, data []byte) (*Set, error) {
	var snap snapshot
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&snap); err != nil {
		return nil, &Error{File: name, Msg: fmt.Sprintf("option snapshot: %v", err)}
	}
	if dec.More() {
		return nil, &Error{File: name, Msg: "option snapshot: data after the JSON object"}
	}
	if snap.Version != snapshotVersion {
		return nil, &Error{File: name, Msg: fmt.Sprintf("option snapshot version %d, want %d", snap.Version, snapshotVersion)}
	}
	set := &Set{suffix: snap.Suffix, src: Sources{DefaultsFile: snap.DefaultsFile, ExtraFile: snap.ExtraFile,
		GroupSuffix: snap.GroupSuffix, NoDefaults: snap.NoDefaults, suffixGiven: snap.GroupSuffix != ""}}
	seen := map[string]bool{}
	for i, o := range snap.Options {
		if o.Name == "" || o.File == "" || o.Line < 1 || (o.Bare && o.Value != "") {
			return nil, &Error{File: name, Msg: fmt.Sprintf("option snapshot: option %d: needs a name, a file and a line, and a bare one no value", i+1)}
		}
		set.opts = append(set.opts, Option{Name: o.Name, Value: o.Value, HasValue: !o.Bare, File: o.File, Line: o.Line, Group: o.Group})
		if !seen[o.File] {
			seen[o.File] = true
			set.files = append(set.files, o.File)
		}
	}
	return set, nil
}

// SameFiles says whether s was read from the option files that src names:
// the same --defaults-file, --defaults-extra-file (symlinks resolved) and
// --defaults-group-suffix.
func (s *Set) SameFiles(src Sources) bool {
	path := func(p string) string {
		if p == "" {
			return ""
		}
		return realPath(p)
	}
	return path(s.src.DefaultsFile) == path(src.DefaultsFile) && path(s.src.ExtraFile) == path(src.ExtraFile) &&
		s.src.GroupSuffix == src.GroupSuffix && s.src.NoDefaults == src.NoDefaults
}
