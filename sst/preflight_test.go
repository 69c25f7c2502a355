package sst

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPreflightCheck(t *testing.T) {
	base := Preflight{PageSize: 16384, Checksum: "full_crc32", LowerCase: "0", KeyPlugin: "file_key_management", KeyFile: "/d/keys", Keys: map[string]string{"1": "aa", "2": "bb"}}
	for _, tc := range []struct {
		name   string
		change func(*Preflight)
		want   string // "" accepts
	}{
		{"same", func(*Preflight) {}, ""},
		{"page size", func(p *Preflight) { p.PageSize = 8192 }, "innodb_page_size: donor 16384, joiner 8192"},
		{"lower case", func(p *Preflight) { p.LowerCase = "1" }, "lower_case_table_names: donor 0, joiner 1"},
		{"strict checksum", func(p *Preflight) { p.Checksum = "strict_crc32" }, "innodb_checksum_algorithm: donor full_crc32, joiner strict_crc32"},
		{"other checksum", func(p *Preflight) { p.Checksum = "crc32" }, ""},
		{"no plugin", func(p *Preflight) { p.KeyPlugin, p.Keys = "", nil }, `encryption key plugin: donor "file_key_management", joiner ""`},
		{"key missing", func(p *Preflight) { p.Keys = map[string]string{"1": "aa"} }, "encryption key ID 2: in the donor's key file /d/keys, missing"},
		{"key differs", func(p *Preflight) { p.Keys = map[string]string{"1": "aa", "2": "cc"} }, "encryption key ID 2: differs"},
		{"more keys", func(p *Preflight) { p.Keys = map[string]string{"1": "aa", "2": "bb", "3": "dd"} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := base
			j.Keys = map[string]string{"1": "aa", "2": "bb"}
			tc.change(&j)
			_, err := base.Check(j)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestKeyDigests(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keys")
	os.WriteFile(p, []byte("# keys\n1;AABB\n\n2;ccdd\n"), 0o600)
	a, err := keyDigests(p, "")
	if err != nil || len(a) != 2 {
		t.Fatalf("%v %v", a, err)
	}
	os.WriteFile(p, []byte("1;aabb\n2;ccde\n"), 0o600)
	b, _ := keyDigests(p, "")
	if a["1"] != b["1"] || a["2"] == b["2"] {
		t.Errorf("digests: %v vs %v", a, b)
	}
	if strings.Contains(a["1"], "aabb") {
		t.Error("the key itself is in its digest")
	}
	os.WriteFile(p, []byte("garbage\n"), 0o600)
	if _, err := keyDigests(p, ""); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad key file: %v", err)
	}
	if e, _ := keyDigests(p, "secret"); len(e) != 1 || e["file"] == "" {
		t.Errorf("encrypted key file: %v", e)
	}
}

func FuzzKeyDigests(f *testing.F) {
	f.Add([]byte("1;aabb\n# c\n2;ccdd\n"))
	f.Add([]byte(";\n;;\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "keys")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Skip()
		}
		m, err := keyDigests(p, "")
		if err == nil {
			for id, d := range m {
				if len(d) != 64 || strings.Contains(id, ";") {
					t.Fatalf("id %q digest %q", id, d)
				}
			}
		}
	})
}
