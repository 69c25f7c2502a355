package optionfile

import (
	"fmt"
	"sort"
	"strings"
)

// Change is an option whose value in effect differs between two reads of
// the option files. An option set in one read only has the other side's
// Had/Has false.
type Change struct {
	Key      string
	Old, New Option
	Had, Has bool
}

// Diff compares the value in effect (the last occurrence) of every option
// of groups between a and b, in key order.
func Diff(a, b *Set, groups ...string) []Change {
	last := func(s *Set) map[string]Option {
		m := map[string]Option{}
		for _, o := range s.Options(groups...) {
			m[o.Key()] = o
		}
		return m
	}
	am, bm := last(a), last(b)
	keys := map[string]bool{}
	for k := range am {
		keys[k] = true
	}
	for k := range bm {
		keys[k] = true
	}
	var out []Change
	for k := range keys {
		o, had := am[k]
		n, has := bm[k]
		if had && has && o.HasValue == n.HasValue && o.Value == n.Value {
			continue
		}
		out = append(out, Change{Key: k, Old: o, New: n, Had: had, Has: has})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// String reads "[sst] transfer-streams: 8 -> 3 (/etc/mysql/conf.d/sst.cnf:4)",
// naming where the new value is, or where the removed one was. Secrets
// (passwords, wsrep-sst-auth, encrypt-key) show as ****.
func (c Change) String() string {
	o := c.New
	if !c.Has {
		o = c.Old
	}
	where := o.Pos()
	if !c.Has {
		where = "was " + where
	}
	return fmt.Sprintf("[%s] %s: %s -> %s (%s)", o.Group, c.Key, c.show(c.Old, c.Had), c.show(c.New, c.Has), where)
}

// Values returns the value before and after as String shows them.
func (c Change) Values() (was, now string) { return c.show(c.Old, c.Had), c.show(c.New, c.Has) }

func (c Change) show(o Option, present bool) string {
	switch {
	case !present:
		return "unset"
	case !o.HasValue:
		return "(no value)"
	case secret(c.Key):
		return "****"
	case o.Value == "":
		return `""`
	}
	return o.Value
}

func secret(key string) bool {
	return strings.Contains(key, "password") || strings.Contains(key, "auth") || key == "encrypt-key"
}
