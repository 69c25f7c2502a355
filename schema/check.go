package schema

import (
	"fmt"
	"sort"

	"github.com/galera-supervisor/galera-supervisor/optionfile"
)

// Finding is one problem with one line of the option files.
type Finding struct {
	Option optionfile.Option
	Error  bool // false: a warning
	Msg    string
}

func (f Finding) String() string {
	label := "warning"
	if f.Error {
		label = "error"
	}
	if f.Option.File == "" {
		return fmt.Sprintf("%s: [%s] %s", label, f.Option.Group, f.Msg)
	}
	return fmt.Sprintf("%s: %s: [%s] %s", f.Option.Pos(), label, f.Option.Group, f.Msg)
}

// CheckSet checks every line of the [sst] and [galera-supervisor] groups
// of set (with their suffixed forms) against the schema: a bad value is
// an error, an unknown option or one that method does not read a warning.
// method is the server's wsrep_sst_method ("" when unknown). The
// supervisor's live guard refuses an edit that adds an error.
func CheckSet(set *optionfile.Set, method string) []Finding {
	var out []Finding
	for _, g := range []Group{SST, Supervisor} {
		for _, o := range set.Options(string(g)) {
			out = append(out, checkLine(g, o, method)...)
		}
	}
	return out
}

func checkLine(g Group, o optionfile.Option, method string) []Finding {
	def := Find(g, o.Key())
	if def == nil {
		msg := fmt.Sprintf("unknown option '%s'", o.Name)
		if near := nearest(g, o.Key()); near != "" {
			msg += fmt.Sprintf(" (did you mean '%s'?)", near)
		}
		return []Finding{{Option: o, Msg: msg}}
	}
	v := o.Value
	var out []Finding
	if !o.HasValue {
		v = "1"
		if def.Kind != Bool {
			out = append(out, Finding{Option: o, Msg: fmt.Sprintf("%s without a value reads as %s=1 (%s)", o.Name, o.Name, def.Doc)})
		}
	}
	if v == "" {
		return append(out, Finding{Option: o, Msg: fmt.Sprintf("%s is empty: the default applies", o.Name)})
	}
	if msg := def.problem(v, isNative(method)); msg != "" {
		return append(out, Finding{Option: o, Error: true, Msg: fmt.Sprintf("%s=%s: %s", o.Name, v, msg)})
	}
	if w := def.Unused(method); w != "" {
		out = append(out, Finding{Option: o, Msg: fmt.Sprintf("%s: %s", o.Name, w)})
	}
	return out
}

// nearest returns the option name of g closest to key, if it is close.
func nearest(g Group, key string) string {
	best, bestD := "", 3
	var names []string
	for _, o := range Options(g) {
		names = append(names, o.Name)
		names = append(names, o.Aliases...)
	}
	sort.Strings(names)
	for _, n := range names {
		if d := editDistance(key, n); d < bestD && d <= len(n)/3 {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
