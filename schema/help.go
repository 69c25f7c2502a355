package schema

import (
	"strings"
)

// Help is the table of group g's options for "help": each option with its
// aliases, type and range, default, what it does, and what the native
// methods do with it.
func Help(g Group) string {
	var b strings.Builder
	for _, o := range Options(g) {
		head := "  " + o.Name
		if len(o.Aliases) > 0 {
			head += " (also " + strings.Join(o.Aliases, ", ") + ")"
		}
		head += "  " + o.typeText()
		if o.Default != "" {
			head += ", default " + o.Default
		}
		b.WriteString(head + "\n")
		wrap(&b, o.Doc+".", "      ")
		if g == SST {
			how := o.Handling.String()
			if o.Handling == Honoured && len(nativeOf(o.Methods)) == 1 {
				how = "honoured by " + strings.Join(nativeOf(o.Methods), ", ")
			}
			if o.Native != "" {
				how += ": " + o.Native
			}
			wrap(&b, "Native methods: "+how+".", "      ")
		}
	}
	return b.String()
}

// typeText is the option's type in the words of the help.
func (o *Option) typeText() string {
	switch o.Kind {
	case Enum:
		return strings.Join(o.Values, "|")
	case Int, Size, Rate, Duration:
		if o.Min != 0 || o.Max != 0 {
			return o.Kind.String() + ", " + o.rangeText()
		}
	}
	return o.Kind.String()
}

func nativeOf(methods []string) []string {
	var out []string
	for _, m := range methods {
		if isNative(m) {
			out = append(out, m)
		}
	}
	return out
}

// wrap writes text in lines of at most 78 columns, each after indent.
func wrap(b *strings.Builder, text, indent string) {
	line := indent
	for _, w := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(w) > 78 {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += w
	}
	b.WriteString(line + "\n")
}
