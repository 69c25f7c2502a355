package optionfile

import (
	"strings"
	"testing"
	"time"
)

func TestParseAge(t *testing.T) {
	for v, want := range map[string]time.Duration{"30": 30 * 24 * time.Hour, "2d": 48 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute, "0": 0} {
		if got, err := ParseAge(v); err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", v, got, err, want)
		}
	}
	for _, v := range []string{"", "d", "-1h", "-1", "1w", "3 days"} {
		if _, err := ParseAge(v); err == nil {
			t.Errorf("ParseAge(%q) accepted", v)
		}
	}
}

// FuzzParseAge: an accepted age is never negative, and N and Nd agree.
func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"30", "30d", "12h", "1h30m", "-1", "99999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := ParseAge(v)
		if err != nil {
			return
		}
		if d < 0 {
			t.Errorf("ParseAge(%q) = %v", v, d)
		}
		if n, ok := strings.CutSuffix(v, "d"); ok {
			if d2, err := ParseAge(n); err != nil || d2 != d {
				t.Errorf("ParseAge(%q) = %v but ParseAge(%q) = %v, %v", v, d, n, d2, err)
			}
		}
	})
}
