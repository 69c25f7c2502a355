package optionfile

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrNoGroups is returned by PrintDefaults when no group was named;
// my_print_defaults then shows its help.
var ErrNoGroups = errors.New("no option group given")

// StatusError carries the exit status my_print_defaults would end with.
type StatusError struct {
	Status int
	Err    error
}

func (e *StatusError) Error() string { return e.Err.Error() }
func (e *StatusError) Unwrap() error { return e.Err }

// ExitCode is the process exit status.
func (e *StatusError) ExitCode() int { return e.Status }

// PrintDefaults does what my_print_defaults does with args (without the
// program name): it writes the options of the named groups to stdout, one
// "--name=value" per line. args are the --defaults-* arguments (first), then
// --mysqld/--mariadbd, -n/--no-defaults, -v/--verbose in any place, group
// names, and "--" ending the options. Warnings go to stderr. The error, if
// any, is a *StatusError with my_print_defaults' exit status (2 for
// unreadable option files or an unknown option, 7 for an unknown
// --name=value) or ErrNoGroups; nothing is printed then.
func PrintDefaults(stdout, stderr io.Writer, args []string) error {
	src, rest, err := ParseArgs(args)
	if err != nil {
		return &StatusError{2, err}
	}
	var groups []string
	noDefaults := src.NoDefaults
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			groups = append(groups, rest[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			groups = append(groups, a)
			continue
		}
		if !strings.HasPrefix(a, "--") {
			for k := 1; k < len(a); k++ {
				switch a[k] {
				case 'n':
					noDefaults = true
				case 'v':
				default:
					return &StatusError{2, fmt.Errorf("unknown option '-%c'", a[k])}
				}
			}
			continue
		}
		name, _, hasValue := strings.Cut(a[2:], "=")
		switch strings.ReplaceAll(name, "_", "-") {
		case "mysqld", "mariadbd":
			groups = append(groups, ServerGroups("")...)
		case "no-defaults":
			noDefaults = true
		case "verbose":
		default:
			if strings.HasPrefix(name, "loose-") || strings.HasPrefix(name, "loose_") {
				fmt.Fprintf(stderr, "warning: unknown option '%s'\n", a)
				continue
			}
			if hasValue {
				return &StatusError{7, fmt.Errorf("unknown variable '%s'", a[2:])}
			}
			return &StatusError{2, fmt.Errorf("unknown option '%s'", a)}
		}
	}
	if noDefaults {
		return nil
	}
	if len(groups) == 0 {
		return ErrNoGroups
	}
	set, err := Load(src)
	if set != nil {
		for _, w := range set.Warnings() {
			fmt.Fprintf(stderr, "warning: %v\n", w)
		}
	}
	if err != nil {
		return &StatusError{2, err}
	}
	var b strings.Builder
	for _, o := range set.Options(groups...) {
		b.WriteString(o.Arg())
		b.WriteByte('\n')
	}
	_, err = io.WriteString(stdout, b.String())
	return err
}
