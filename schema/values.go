package schema

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Lookup returns an option's value in one group as the option files give
// it ("1" for an option given without a value) and whether it is set.
type Lookup func(name string) (string, bool)

// Values reads the typed options of one group. An option set to an empty
// value counts as unset, as the stock scripts' parse_cnf has it.
type Values struct {
	Group Group
	Look  Lookup
}

// Raw returns the spelling that is set (the name first, then the aliases)
// and its value; ok is false when none is set to a non-empty value.
func (v Values) Raw(o *Option) (spelled, value string, ok bool) {
	if v.Look == nil {
		return "", "", false
	}
	for _, n := range append([]string{o.Name}, o.Aliases...) {
		if val, set := v.Look(n); set && strings.TrimSpace(val) != "" {
			return n, strings.TrimSpace(val), true
		}
	}
	return "", "", false
}

func (v Values) option(name string) *Option {
	o := Find(v.Group, name)
	if o == nil {
		// Reading an option the schema does not hold is a bug: every
		// option read must be one config check knows.
		panic(fmt.Sprintf("schema: [%s] %s is not in the schema", v.Group, name))
	}
	return o
}

// get parses the option's value, or its default when unset; set reports
// whether the option files set it.
func (v Values) get(name string) (val any, set bool, err error) {
	o := v.option(name)
	spelled, raw, ok := v.Raw(o)
	if !ok {
		if o.Default == "" {
			return nil, false, nil
		}
		val, err := o.Parse(o.Default)
		if err != nil {
			panic(fmt.Sprintf("schema: [%s] %s: default %q: %v", o.Group, o.Name, o.Default, err))
		}
		return val, false, nil
	}
	val, err = o.Parse(raw)
	if err != nil {
		return nil, true, &ValueError{Group: o.Group, Option: spelled, Value: raw, Msg: err.Error()}
	}
	return val, true, nil
}

// Bool returns a Bool option's value (false when unset without default).
func (v Values) Bool(name string) (b, set bool, err error) {
	x, set, err := v.get(name)
	b, _ = x.(bool)
	return b, set, err
}

// Int returns an Int, Size or Rate option's value.
func (v Values) Int(name string) (n int64, set bool, err error) {
	x, set, err := v.get(name)
	n, _ = x.(int64)
	return n, set, err
}

// Duration returns a Duration option's value.
func (v Values) Duration(name string) (d time.Duration, set bool, err error) {
	x, set, err := v.get(name)
	d, _ = x.(time.Duration)
	return d, set, err
}

// String returns a Text, Path, Enum or HostPort option's value; an Enum
// in the schema's spelling.
func (v Values) String(name string) (s string, set bool, err error) {
	x, set, err := v.get(name)
	s, _ = x.(string)
	return s, set, err
}

// List returns a HostPorts option's value.
func (v Values) List(name string) (l []string, set bool, err error) {
	x, set, err := v.get(name)
	l, _ = x.([]string)
	return l, set, err
}

// SockOpt returns a SockOpt option's value.
func (v Values) SockOpt(name string) (so SockOpt, set bool, err error) {
	x, set, err := v.get(name)
	so, _ = x.(SockOpt)
	return so, set, err
}

// CheckNative checks the option's value as the native methods take it:
// an error when it does not parse or is one they refuse.
func (v Values) CheckNative(name string) error {
	o := v.option(name)
	if spelled, raw, ok := v.Raw(o); ok {
		return o.Check(spelled, raw, true)
	}
	return nil
}

// Ciphers returns a CipherList option's value.
func (v Values) Ciphers(name string) (c Ciphers, set bool, err error) {
	x, set, err := v.get(name)
	c, _ = x.(Ciphers)
	return c, set, err
}

// Problems checks every option of v's group that is set: a value that
// does not parse, or that method refuses, is an error; an option that
// method does not read is a warning saying what it means here. The SST
// calls it at its start with its own method.
func (v Values) Problems(method string) (errs []error, warnings []*ValueError) {
	native := isNative(method)
	for _, o := range Options(v.Group) {
		spelled, raw, ok := v.Raw(o)
		if !ok {
			continue
		}
		if err := o.Check(spelled, raw, native); err != nil {
			errs = append(errs, err)
			continue
		}
		if w := o.Unused(method); w != "" {
			warnings = append(warnings, &ValueError{Group: v.Group, Option: spelled, Value: raw, Msg: w})
		}
	}
	return errs, warnings
}

// Unused says why method does not read the option, or "" when it does
// (or the schema does not know the method).
func (o *Option) Unused(method string) string {
	switch {
	case !slices.Contains(known, method) || o.UsedBy(method):
		return ""
	case o.Native != "" && (isNative(method) || len(o.Methods) == 0):
		return o.Native
	}
	return fmt.Sprintf("read only by %s; wsrep_sst_method=%s ignores it", strings.Join(o.Methods, ", "), method)
}

// known are the methods whose options the schema lists; of another
// method (mysqldump, a script of one's own) it cannot tell.
var known = []string{NativeCopy, NativeBackup, Mariabackup, Rsync}

func isNative(method string) bool { return method == NativeCopy || method == NativeBackup }
