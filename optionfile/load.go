package optionfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sources says which option files to read, as the --defaults-* arguments
// and the environment do for MariaDB programs.
type Sources struct {
	DefaultsFile string // --defaults-file: read only this file
	ExtraFile    string // --defaults-extra-file: read after the system files, before ~/.my.cnf
	GroupSuffix  string // --defaults-group-suffix: every group G also reads G+suffix; "" falls back to $MYSQL_GROUP_SUFFIX
	NoDefaults   bool   // --no-defaults: read nothing

	// Home is the directory of ~/.my.cnf and of "~/" in include paths;
	// "" means $HOME.
	Home string
	// Getenv reads MYSQL_HOME, MARIADB_HOME, MYSQL_GROUP_SUFFIX and HOME;
	// nil means os.Getenv.
	Getenv func(string) string

	suffixGiven bool // "--defaults-group-suffix=" given: $MYSQL_GROUP_SUFFIX is not read
}

// sysconfDirs are the directories compiled into Debian's MariaDB 10.11
// before $MARIADB_HOME/$MYSQL_HOME, the extra file and ~/.
var sysconfDirs = []string{"/etc/", "/etc/mysql/"}

// ParseArgs takes the arguments MariaDB programs handle before anything else
// off the front of args (without the program name): either "--no-defaults",
// or any of --defaults-file=, --defaults-extra-file= and
// --defaults-group-suffix=, each at most once. The first argument that is
// none of these, or repeats one, ends them; it and the rest are returned.
// As in MariaDB, only the "--opt=value" form counts; the error reports
// "--defaults-file F" in their place, which MariaDB programs reject.
func ParseArgs(args []string) (Sources, []string, error) {
	var src Sources
	if len(args) > 0 && args[0] == "--no-defaults" {
		src.NoDefaults = true
		return src, args[1:], nil
	}
	var haveFile, haveExtra, haveSuffix bool
	for len(args) > 0 {
		a := args[0]
		if v, ok := strings.CutPrefix(a, "--defaults-file="); ok && !haveFile {
			src.DefaultsFile, haveFile = emptyPath(v), true
		} else if v, ok := strings.CutPrefix(a, "--defaults-extra-file="); ok && !haveExtra {
			src.ExtraFile, haveExtra = emptyPath(v), true
		} else if v, ok := strings.CutPrefix(a, "--defaults-group-suffix="); ok && !haveSuffix {
			src.GroupSuffix, haveSuffix, src.suffixGiven = v, true, true
		} else {
			if name, ok := strings.CutPrefix(a, "--"); ok && (name == "defaults-file" || name == "defaults-extra-file" || name == "defaults-group-suffix") {
				return src, args, fmt.Errorf("%s needs its value after '=': MariaDB reads only --%s=VALUE", a, name)
			}
			break
		}
		args = args[1:]
	}
	return src, args, nil
}

// emptyPath: MariaDB resolves an empty file name to the working directory,
// which reads as an empty file.
func emptyPath(v string) string {
	if v == "" {
		return "./"
	}
	return v
}

// Set is the options read from a set of option files, in the order
// MariaDB reads them, every group kept.
type Set struct {
	opts     []Option
	files    []string
	warnings []error
	broken   []error
	suffix   string
	src      Sources
	// looked are the paths the reader tried, found or not, for Watcher.
	looked []lookedPath
}

// Load reads the option files src names, following includes. It fails on
// what makes MariaDB programs refuse to start: a missing --defaults-file or
// --defaults-extra-file, or a malformed line in a file read directly.
// Problems MariaDB only reports (a bad included file, a world-writable file,
// includes nested too deep) are in Warnings.
func Load(src Sources) (*Set, error) {
	return load(src, osFS{}, sysconfDirs)
}

func load(src Sources, fsys fileSystem, sysdirs []string) (*Set, error) {
	getenv := src.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	set := &Set{suffix: src.GroupSuffix, src: src}
	if set.suffix == "" && !src.suffixGiven {
		set.suffix = getenv("MYSQL_GROUP_SUFFIX")
	}
	if src.NoDefaults {
		return set, nil
	}
	home := src.Home
	if home == "" {
		home = getenv("HOME")
	}
	r := &reader{fs: fsys, home: home}
	defer func() {
		set.opts, set.files, set.warnings, set.broken, set.looked = r.opts, r.files, r.warnings, r.broken, r.looked
	}()

	required := func(name string) error {
		found, err := r.readFile(name, 0)
		if err != nil {
			return err
		}
		if !found {
			return &Error{File: name, Msg: "could not open required defaults file"}
		}
		return nil
	}
	if src.DefaultsFile != "" {
		// The name as given too: a symlink to it may be retargeted.
		r.look(absPath(src.DefaultsFile), false)
		return set, required(realPath(src.DefaultsFile))
	}
	for _, dir := range defaultDirs(getenv, sysdirs) {
		if dir == "" {
			if src.ExtraFile != "" {
				r.look(absPath(src.ExtraFile), false)
				if err := required(realPath(src.ExtraFile)); err != nil {
					return set, err
				}
			}
			continue
		}
		name := dir + "my.cnf"
		if strings.HasPrefix(dir, "~") {
			name = dir + ".my.cnf"
		}
		if _, err := r.readFile(name, 0); err != nil {
			return set, err
		}
	}
	return set, nil
}

// defaultDirs is init_default_directories(): "" marks the place of the
// extra file. A directory named twice is read once, at its later place.
func defaultDirs(getenv func(string) string, sysdirs []string) []string {
	var dirs []string
	add := func(d string) {
		if d != "" && !strings.HasSuffix(d, "/") {
			d += "/"
		}
		for i, have := range dirs {
			if have == d {
				dirs = append(dirs[:i], dirs[i+1:]...)
				break
			}
		}
		dirs = append(dirs, d)
	}
	for _, d := range sysdirs {
		add(d)
	}
	if env := getenv("MARIADB_HOME"); env != "" {
		add(env)
	} else if env := getenv("MYSQL_HOME"); env != "" {
		add(env)
	}
	add("")
	add("~/")
	return dirs
}

func absPath(name string) string {
	if abs, err := filepath.Abs(name); err == nil {
		return abs
	}
	return name
}

// realPath makes a --defaults-file name absolute, resolving symlinks when
// it can, as MariaDB's my_realpath() does.
func realPath(name string) string {
	abs, err := filepath.Abs(name)
	if err != nil {
		return name
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	return abs
}

// Options returns the options of the given groups (and of each group with
// the group suffix appended), in file order: what my_print_defaults prints
// for these groups. Group names match case-insensitively.
func (s *Set) Options(groups ...string) []Option {
	in := s.inGroups(groups)
	var out []Option
	for _, o := range s.opts {
		if in(o) {
			out = append(out, o)
		}
	}
	return out
}

// inGroups says whether an option is in one of groups, or of a group with
// the suffix appended.
func (s *Set) inGroups(groups []string) func(Option) bool {
	if s.suffix != "" {
		all := make([]string, 0, 2*len(groups))
		all = append(all, groups...)
		for _, g := range groups {
			all = append(all, g+s.suffix)
		}
		groups = all
	}
	return func(o Option) bool {
		for _, g := range groups {
			if groupMatch(o.Group, g) {
				return true
			}
		}
		return false
	}
}

// WithGroups returns a copy of s whose options of groups are those of
// from instead: the supervisor hands the SST the [sst] group it read last
// and the server groups mariadbd started with.
func (s *Set) WithGroups(from *Set, groups ...string) *Set {
	out := *s
	in := s.inGroups(groups)
	out.opts = nil
	for _, o := range s.opts {
		if !in(o) {
			out.opts = append(out.opts, o)
		}
	}
	out.opts = append(out.opts, from.Options(groups...)...)
	return &out
}

// Lookup returns the last occurrence of the named option in the given
// groups, the one mariadbd would use. Names compare by [Key].
func (s *Set) Lookup(groups []string, name string) (Option, bool) {
	key := Key(name)
	opts := s.Options(groups...)
	for i := len(opts) - 1; i >= 0; i-- {
		if opts[i].Key() == key {
			return opts[i], true
		}
	}
	return Option{}, false
}

// All returns every option read, of every group, in file order.
func (s *Set) All() []Option { return append([]Option(nil), s.opts...) }

// Files returns the files read, in order, includes included.
func (s *Set) Files() []string { return append([]string(nil), s.files...) }

// Warnings returns what MariaDB reports without failing: errors in included
// files, world-writable files skipped, includes nested too deep.
func (s *Set) Warnings() []error { return append([]error(nil), s.warnings...) }

// Broken returns the errors of included files that MariaDB reads past,
// ignoring the rest of that file: a malformed line, a missing !includedir.
// They are also in Warnings.
func (s *Set) Broken() []error { return append([]error(nil), s.broken...) }

// Sources returns what Load was given.
func (s *Set) Sources() Sources { return s.src }

// GroupSuffix returns the suffix in effect.
func (s *Set) GroupSuffix() string { return s.suffix }

// groupMatch is find_type(FIND_TYPE_NO_PREFIX) on one name: latin1
// case-insensitive, trailing spaces of the file's group ignored.
func groupMatch(fileGroup, want string) bool {
	if len(fileGroup) < len(want) {
		return false
	}
	for i := 0; i < len(want); i++ {
		if latin1Upper(fileGroup[i]) != latin1Upper(want[i]) {
			return false
		}
	}
	return strings.Trim(fileGroup[len(want):], " ") == ""
}

func latin1Upper(c byte) byte {
	switch {
	case c >= 'a' && c <= 'z':
		return c - 32
	case c >= 0xE0 && c <= 0xFE && c != 0xF7:
		return c - 32
	}
	return c
}

// DefaultServerVersion is the MariaDB release whose version groups
// ServerGroups reads by default.
const DefaultServerVersion = "10.11"

// ServerGroups returns the groups mariadbd reads (my_print_defaults
// --mysqld) for a server version such as "10.11" or "10.11.19".
func ServerGroups(version string) []string {
	if version == "" {
		version = DefaultServerVersion
	}
	if parts := strings.SplitN(version, ".", 3); len(parts) >= 2 {
		version = parts[0] + "." + parts[1]
	}
	return []string{
		"mysqld", "server", "mysqld-" + version,
		"mariadb", "mariadb-" + version,
		"mariadbd", "mariadbd-" + version,
		"client-server", "galera",
	}
}
