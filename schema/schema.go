// Package schema is the contract between the supervisor and the SST
// methods: the names of the files and environment variables they share,
// the Galera position, and every option of the [sst] and [galera-supervisor] groups with its
// aliases, type, range, default, the methods that read it and what a stock
// option means here.
//
// "config check", the supervisor's start, its live guard of the option
// files and the SST all parse option values through this package, so a
// value that one accepts the others accept, with the same words.
package schema

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Group is an option group this package describes.
type Group string

// The groups of the schema. The server groups are mariadbd's and not
// described here.
const (
	SST        Group = "sst"
	Supervisor Group = "galera-supervisor"
)

// Kind is the type of an option's value.
type Kind int

// The kinds of option values.
const (
	Text       Kind = iota // any text (extra arguments, a shell filter)
	Path                   // a file or directory
	Bool                   // 1/0, on/off, yes/no, true/false
	Int                    // a whole number within Min..Max
	Size                   // bytes, with an optional K, M, G or T suffix, within Min..Max
	Rate                   // bytes per second, pv -L syntax, within Min..Max
	Duration               // a number of Unit, or with a unit (5m, 300s), within Min..Max seconds
	Enum                   // one of Values, any case
	SocatOpts              // a socat option list
	HostPort               // host:port
	HostPorts              // host:port,host:port,...
	CipherList             // an OpenSSL cipher list
)

var kindNames = [...]string{"text", "path", "bool", "integer", "size", "rate", "duration", "one of", "socat options", "host:port", "host:port list", "cipher list"}

func (k Kind) String() string { return kindNames[k] }

// The SST methods an option can be read by. The native methods are this
// program's; the others are the stock scripts /usr/bin/wsrep_sst_<method>.
const (
	NativeCopy   = "native-copy"
	NativeBackup = "native-backup"
	Mariabackup  = "mariabackup"
	Rsync        = "rsync"
)

// Native are the SST methods this program implements.
var Native = []string{NativeCopy, NativeBackup}

// Handling is what the native methods do with an option.
type Handling int

// How the native methods treat an option.
const (
	Honoured Handling = iota // as the stock scripts do
	Mapped                   // to a native equivalent, which Native describes
	Ignored                  // not read: set, it is warned about with Native's sentence
	Refused                  // some values (RefusedValues) fail the SST with Native's sentence
	Own                      // an option of this program's own
)

var handlingNames = [...]string{"honoured", "mapped", "warned, ignored", "refused", "native"}

func (h Handling) String() string { return handlingNames[h] }

// Option describes one option.
type Option struct {
	Name    string   // canonical spelling, with dashes
	Aliases []string // other names for it, read when Name is unset
	Group   Group
	Kind    Kind
	// Min and Max bound Int, Size and Rate values, and Duration values
	// in seconds; both zero means no bound but the type's.
	Min, Max int64
	Values   []string      // the values of an Enum
	Written  bool          // a Path written to (a directory, a socket); others are read
	Unit     time.Duration // of a Duration given as a bare number; default a second
	Default  string        // as written in an option file; "" none or per method (Doc says)
	Methods  []string      // the SST methods that read it; nil for [galera-supervisor]
	Handling Handling      // what the native methods do with it
	// Native says, for an option that is not Honoured or Own, what it
	// means to the native methods and what to use instead.
	Native        string
	RefusedValues []string // values the native methods refuse (Handling Refused)
	Doc           string   // one line for help and messages
}

// key normalises an option name as mariadbd compares them: '_' is '-'.
func key(name string) string { return strings.ReplaceAll(strings.ToLower(name), "_", "-") }

// Find returns the option of group named name or one of its aliases
// (any spelling), or nil.
func Find(g Group, name string) *Option {
	k := key(name)
	for i := range table {
		o := &table[i]
		if o.Group == g && (o.Name == k || slices.Contains(o.Aliases, k)) {
			return o
		}
	}
	return nil
}

// Options returns the options of group g, in the order of the table.
func Options(g Group) []*Option {
	var out []*Option
	for i := range table {
		if table[i].Group == g {
			out = append(out, &table[i])
		}
	}
	return out
}

// UsedBy reports whether method reads the option. Options of
// [galera-supervisor] are read by the supervisor whatever the method.
func (o *Option) UsedBy(method string) bool {
	return o.Group != SST || slices.Contains(o.Methods, method)
}

// ValueError is a value an option cannot take.
type ValueError struct {
	Group  Group
	Option string // as the option files spell it
	Value  string
	Msg    string
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("[%s] %s=%s: %s", e.Group, e.Option, e.Value, e.Msg)
}

// Parse reads v as the option's value: a bool, an int64 (Int, Size, Rate),
// a time.Duration, a string (Text, Path, Enum in canonical case, HostPort),
// a []string (HostPorts), a SockOpt or Ciphers. The error is what is wrong with v,
// without the option's name (Check adds it).
func (o *Option) Parse(v string) (any, error) {
	v = strings.TrimSpace(v)
	switch o.Kind {
	case Bool:
		return ParseBool(v)
	case Int:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("not a whole number (%s)", o.rangeText())
		}
		return n, o.inRange(n)
	case Size:
		n, err := parseSize(v)
		if err != nil {
			return nil, err
		}
		return n, o.inRange(n)
	case Rate:
		n, err := parseRate(v)
		if err != nil {
			return nil, err
		}
		return n, o.inRange(n)
	case Duration:
		return o.parseDuration(v)
	case Enum:
		for _, ok := range o.Values {
			if strings.EqualFold(v, ok) {
				return ok, nil
			}
		}
		return nil, fmt.Errorf("want %s", strings.Join(o.Values, ", "))
	case SocatOpts:
		return parseSockOpt(v)
	case HostPort:
		return v, checkHostPort(v)
	case HostPorts:
		return parseHostPorts(v)
	case CipherList:
		return parseCiphers(v)
	case Path:
		if v == "" {
			return nil, fmt.Errorf("empty path")
		}
	}
	return v, nil
}

func (o *Option) parseDuration(v string) (time.Duration, error) {
	unit := o.Unit
	if unit == 0 {
		unit = time.Second
	}
	d, err := parseDuration(v, unit)
	if err != nil {
		return 0, err
	}
	if (o.Min != 0 || o.Max != 0) && (d < time.Duration(o.Min)*time.Second || d > time.Duration(o.Max)*time.Second) {
		return 0, fmt.Errorf("want %s", o.rangeText())
	}
	if d%time.Second != 0 && unit >= time.Second {
		return 0, fmt.Errorf("want whole seconds")
	}
	return d, nil
}

func (o *Option) inRange(n int64) error {
	if o.Min == 0 && o.Max == 0 || n >= o.Min && n <= o.Max {
		return nil
	}
	return fmt.Errorf("want %s", o.rangeText())
}

// rangeText says which values the option takes, in the units its users
// write.
func (o *Option) rangeText() string {
	if o.Min == 0 && o.Max == 0 {
		return o.Kind.String()
	}
	show := func(n int64) string { return strconv.FormatInt(n, 10) }
	switch o.Kind {
	case Size, Rate:
		show = FormatSize
	case Duration:
		show = func(n int64) string { return (time.Duration(n) * time.Second).String() }
	}
	if o.Max >= 1<<31-1 {
		return "at least " + show(o.Min)
	}
	return show(o.Min) + " to " + show(o.Max)
}

// FormatSize writes n bytes as an option file would: 4k, 8M, 100.
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"k", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

// Check parses value as spelled (the option's name as written, for the
// message) and returns a *ValueError naming it, or nil. A value the
// native methods refuse is refused here only when native is set.
func (o *Option) Check(spelled, value string, native bool) error {
	if msg := o.problem(value, native); msg != "" {
		return &ValueError{Group: o.Group, Option: spelled, Value: value, Msg: msg}
	}
	return nil
}

// problem is what is wrong with value, or "".
func (o *Option) problem(value string, native bool) string {
	if _, err := o.Parse(value); err != nil {
		return err.Error()
	}
	if native && o.refuses(value) {
		return o.Native
	}
	if native && o.Kind == CipherList {
		// OpenSSL's keywords are fine to the stock scripts; the native
		// methods need a suite they implement.
		if c, _ := parseCiphers(value); len(c.Suites) == 0 {
			return errNoSuite
		}
	}
	return ""
}

func (o *Option) refuses(v string) bool {
	return slices.ContainsFunc(o.RefusedValues, func(r string) bool { return strings.EqualFold(r, strings.TrimSpace(v)) })
}
