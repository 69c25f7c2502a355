// Package optionfile reads MariaDB option files (my.cnf) exactly as
// MariaDB 10.11 does (mysys/my_default.c), quirks included, so that what the
// supervisor and its SST methods see is what mariadbd and my_print_defaults
// see.
//
// What is emulated, byte for byte:
//   - lines are read in chunks of at most 4094 bytes (fgets into a 4 KiB
//     buffer); a longer line continues as a new line; a NUL ends a line;
//   - whitespace is latin1's: \t \n \v \f \r, space and 0xA0;
//   - '#' and ';' start a comment line; inside a line only '#' does, and not
//     within single or double quotes;
//   - "key = value": both trimmed; one pair of matching quotes around the
//     value is removed; the escapes \n \t \r \b \s \" \' \\ are decoded
//     anywhere in the value, other backslashes are kept;
//   - group names match case-insensitively, trailing blanks trimmed, leading
//     ones kept;
//   - "!include FILE" and "!includedir DIR" (files ending in ".cnf", in byte
//     order); a missing include target is skipped silently, a missing
//     includedir is an error; errors inside an included file end that file
//     only; includes nest 10 deep at most; world-writable files are skipped;
//     a relative include path is relative to the working directory, not to
//     the including file.
//
// Option names are kept as written; [Set.Lookup] compares them the way
// mariadbd's option parser does ('-' equals '_', "loose-" ignored).
package optionfile

import (
	"fmt"
	"strings"
)

// Option is one option line of an option file.
type Option struct {
	Name     string // as written, e.g. "wsrep_provider" or "loose-foo"
	Value    string // unquoted and unescaped
	HasValue bool   // "key = value" rather than a bare "key"
	File     string // file the line is in
	Line     int    // 1-based line number in File
	Group    string // group the line is in, as written
}

// Arg returns the option as a command-line argument, exactly as
// my_print_defaults prints it: "--name=value" or "--name".
func (o Option) Arg() string {
	if !o.HasValue {
		return "--" + o.Name
	}
	return "--" + o.Name + "=" + o.Value
}

// Key returns the name as mariadbd's option parser compares it: without a
// "loose-" prefix, with '_' read as '-'.
func (o Option) Key() string { return Key(o.Name) }

// Key normalises an option name: "loose_innodb_buffer_pool_size" and
// "innodb-buffer-pool-size" have the same key.
func Key(name string) string {
	name = strings.ReplaceAll(name, "_", "-")
	if rest, ok := strings.CutPrefix(name, "loose-"); ok {
		name = rest
	}
	return name
}

// Pos returns "file:line", for messages.
func (o Option) Pos() string { return fmt.Sprintf("%s:%d", o.File, o.Line) }

// Error is a problem in an option file. Line is 0 when the problem is the
// file itself.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Quote returns v written so that MariaDB reads it back as v: in double
// quotes, with backslash escapes for the characters that need them. It
// cannot carry a NUL byte; Quote drops them.
func Quote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case 0:
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
