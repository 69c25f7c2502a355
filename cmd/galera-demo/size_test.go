package main

import "testing"

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"0", 0, false},
		{"123", 123, false},
		{"8K", 8 << 10, false},
		{"32MB", 32 << 20, false},
		{"32mib", 32 << 20, false},
		{"1G", 1 << 30, false},
		{"2GB", 2 << 30, false},
		{"", 0, true},
		{"M", 0, true},
		{"-1M", 0, true},
		{"1T", 0, true},
		{"x", 0, true},
	} {
		got, err := parseSize(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}
