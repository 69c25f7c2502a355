package optionfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
)

const (
	// lineMax is what fgets(buff, sizeof(buff)-1) returns at most with
	// my_default.c's 4096-byte buffer.
	lineMax = 4094
	// maxIncludeDepth is my_default.c's max_recursion_level.
	maxIncludeDepth = 10
)

// fileSystem is what the reader needs from the operating system; tests and
// the fuzz target replace it.
type fileSystem interface {
	Stat(name string) (fs.FileInfo, error)
	ReadFile(name string) ([]byte, error)
	ReadDir(name string) ([]string, error)
}

type osFS struct{}

func (osFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }
func (osFS) ReadFile(name string) ([]byte, error)  { return os.ReadFile(name) }
func (osFS) ReadDir(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// reader reads option files and everything they include, in order.
type reader struct {
	fs       fileSystem
	home     string // for "~/" in include paths; "" leaves them alone
	opts     []Option
	files    []string
	warnings []error
	broken   []error
	looked   []lookedPath
}

// lookedPath is a file or !includedir directory the reader tried to read.
type lookedPath struct {
	path string
	dir  bool
}

func (r *reader) look(path string, dir bool) {
	r.looked = append(r.looked, lookedPath{path: path, dir: dir})
}

// isSpace is my_isspace() for latin1.
func isSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r') || c == 0xA0
}

func trimRightSpace(s []byte) []byte {
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// expandHome does the "~/" part of MariaDB's unpack_filename.
func (r *reader) expandHome(name string) string {
	if r.home == "" {
		return name
	}
	if name == "~" {
		return r.home
	}
	if rest, ok := strings.CutPrefix(name, "~/"); ok {
		return strings.TrimSuffix(r.home, "/") + "/" + rest
	}
	return name
}

// readFile reads one option file at include depth depth. found is false when
// the file does not exist or cannot be opened, which callers treat
// differently. A non-nil error means the file had a fatal problem; what it
// contributed before that line stays, as in MariaDB.
func (r *reader) readFile(name string, depth int) (found bool, err error) {
	name = r.expandHome(name)
	r.look(name, false)
	st, err := r.fs.Stat(name)
	if err != nil {
		return false, nil
	}
	if st.Mode().IsRegular() && st.Mode().Perm()&0o002 != 0 {
		r.warnings = append(r.warnings, &Error{File: name, Msg: "world-writable option file is ignored"})
		return true, nil
	}
	data, err := r.fs.ReadFile(name)
	if err != nil {
		// fopen() of a directory succeeds and reads nothing.
		if st.IsDir() {
			r.files = append(r.files, name)
			return true, nil
		}
		return false, nil
	}
	r.files = append(r.files, name)
	return true, r.parse(name, data, depth)
}

// parse reads the lines of one file. The group is per file: an included
// file starts without one, and the including file's group continues after
// the include.
func (r *reader) parse(name string, data []byte, depth int) error {
	var (
		group      string
		foundGroup bool
		line       int
	)
	for len(data) > 0 {
		// fgets: up to lineMax bytes, through the newline.
		n := bytes.IndexByte(data, '\n') + 1
		if n == 0 || n > lineMax {
			n = min(len(data), lineMax)
		}
		s := data[:n]
		data = data[n:]
		line++
		// C strings end at the first NUL.
		if i := bytes.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}

		i := 0
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) || s[i] == '#' || s[i] == ';' {
			continue
		}
		switch s[i] {
		case '!':
			if err := r.directive(name, line, s, i, depth); err != nil {
				return err
			}
			continue
		case '[':
			end := bytes.IndexByte(s[i+1:], ']')
			if end < 0 {
				return &Error{File: name, Line: line, Msg: "wrong group definition (no closing ']')"}
			}
			group = string(trimRightSpace(s[i+1 : i+1+end]))
			foundGroup = true
			continue
		}
		if !foundGroup {
			return &Error{File: name, Line: line, Msg: "option without preceding group"}
		}
		r.opts = append(r.opts, parseOption(s, i, name, line, group))
	}
	return nil
}

// parseOption reads "key", "key = value" from s[i:], s being the whole
// line. It follows my_default.c pointer by pointer, since its corner cases
// are what my_print_defaults prints.
func parseOption(s []byte, i int, file string, line int, group string) Option {
	o := Option{File: file, Line: line, Group: group}
	c := commentStart(s, i) // the C string ends here now
	eq := bytes.IndexByte(s[i:c], '=')
	if eq < 0 {
		o.Name = string(trimRightSpace(s[i:c]))
		return o
	}
	eq += i
	// The key's trailing blanks are trimmed from '=' backwards, and that loop
	// is not stopped by the key's start: with an empty key it runs into the
	// leading blanks, and strnmov() then copies up to the end of the string.
	end := eq
	for end > 0 && isSpace(s[end-1]) {
		end--
	}
	if end < i {
		o.Name = string(s[i:c])
	} else {
		o.Name = string(s[i:end])
	}
	o.HasValue = true

	v := eq + 1
	for v < c && isSpace(s[v]) {
		v++
	}
	ve := c
	for ve > v && isSpace(s[ve-1]) {
		ve--
	}
	val := s[v:ve]
	if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[0] == val[len(val)-1] {
		val = val[1 : len(val)-1]
	}
	o.Value = unescape(val)
	return o
}

// commentStart returns where an inline '#' comment starts in s[i:], or
// len(s). Quotes protect '#', a backslash inside quotes protects a quote.
func commentStart(s []byte, i int) int {
	var quote byte
	escape := false
	for k := i; k < len(s); k++ {
		c := s[k]
		if (c == '\'' || c == '"') && !escape {
			if quote == 0 {
				quote = c
			} else if quote == c {
				quote = 0
			}
		}
		if quote == 0 && c == '#' {
			return k
		}
		escape = quote != 0 && c == '\\' && !escape
	}
	return len(s)
}

func unescape(v []byte) string {
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v)
	}
	out := make([]byte, 0, len(v))
	for k := 0; k < len(v); k++ {
		if v[k] != '\\' || k == len(v)-1 {
			out = append(out, v[k])
			continue
		}
		k++
		switch v[k] {
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'r':
			out = append(out, '\r')
		case 'b':
			out = append(out, '\b')
		case 's':
			out = append(out, ' ')
		case '"', '\'', '\\':
			out = append(out, v[k])
		default:
			out = append(out, '\\', v[k])
		}
	}
	return string(out)
}

// directive handles a line starting with '!' at s[i]. Unknown directives
// are ignored, as MariaDB does.
func (r *reader) directive(name string, line int, s []byte, i, depth int) error {
	if depth >= maxIncludeDepth {
		r.warnings = append(r.warnings, &Error{File: name, Line: line,
			Msg: fmt.Sprintf("skipping %q: includes nest deeper than %d", string(cutLast(s, i)), maxIncludeDepth)})
		return nil
	}
	p := i + 1
	for p < len(s) && isSpace(s[p]) {
		p++
	}
	keyword := func(kw string) bool {
		return bytes.HasPrefix(s[p:], []byte(kw)) && p+len(kw) < len(s) && isSpace(s[p+len(kw)])
	}
	switch {
	case keyword("includedir"):
		dir, err := argument(name, line, s, p, "includedir")
		if err != nil {
			return err
		}
		r.look(dir, true)
		names, err := r.fs.ReadDir(dir)
		if err != nil {
			return &Error{File: name, Line: line, Msg: fmt.Sprintf("!includedir: %v", unwrapPath(err))}
		}
		sort.Strings(names) // my_dir(MY_WANT_SORT) compares with strcmp
		for _, n := range names {
			if ext(n) != ".cnf" {
				continue
			}
			path := n
			if !strings.HasSuffix(dir, "/") {
				path = dir + "/" + n
			} else {
				path = dir + n
			}
			if _, err := r.readFile(path, depth+1); err != nil {
				r.warnings = append(r.warnings, err)
				r.broken = append(r.broken, err)
			}
		}
	case keyword("include"):
		file, err := argument(name, line, s, p, "include")
		if err != nil {
			return err
		}
		// A missing include target is silently skipped.
		if _, err := r.readFile(file, depth+1); err != nil {
			r.warnings = append(r.warnings, err)
			r.broken = append(r.broken, err)
		}
	}
	return nil
}

// argument returns the path after "!include" or "!includedir". Like
// get_argument() it assumes the line ends in a newline and always drops the
// last byte: on a last line without one, the path loses its last character.
func argument(name string, line int, s []byte, p int, kw string) (string, error) {
	a := p + len(kw)
	for a < len(s) && isSpace(s[a]) {
		a++
	}
	end := len(s) - 1
	for end > 0 && isSpace(s[end-1]) {
		end--
	}
	if end <= a {
		return "", &Error{File: name, Line: line, Msg: fmt.Sprintf("wrong '!%s' directive: no path", kw)}
	}
	return string(s[a:end]), nil
}

// cutLast is the directive text as MariaDB's recursion warning shows it.
func cutLast(s []byte, i int) []byte {
	end := len(s) - 1
	for end > i && isSpace(s[end-1]) {
		end--
	}
	if end < i {
		return nil
	}
	return s[i:end]
}

// ext is fn_ext2(): from the last '.' of the name, or "".
func ext(name string) string {
	if k := strings.LastIndexByte(name, '.'); k >= 0 {
		return name[k:]
	}
	return ""
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s %s: %w", pe.Op, pe.Path, pe.Err)
	}
	return err
}
