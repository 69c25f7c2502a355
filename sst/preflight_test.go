package sst

import (
	"bytes"
	"encoding/binary"
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

func TestRedoFormat(t *testing.T) {
	for v, want := range map[string]int{"10.4.34": 0, "10.5.0": 1, "10.6.99": 1, "10.7.8": 1, "10.8.1": 2, "10.11.19": 2, "11.4.2": 2, "10.11.6-MariaDB-0+deb12u1": 2, "junk": -1} {
		if got, _ := RedoFormat(v); got != want {
			t.Errorf("RedoFormat(%s) = %d, want %d", v, got, want)
		}
	}
}

func TestPreflightVersions(t *testing.T) {
	for _, tc := range []struct {
		donor, joiner string
		refuse, note  string
	}{
		{"10.11.6-MariaDB", "10.11.9-MariaDB", "", ""},
		{"10.11.6-MariaDB", "10.6.20-MariaDB", "server version: donor 10.11.6-MariaDB (redo format of MariaDB 10.8 and later), joiner 10.6.20-MariaDB (10.5 to 10.7)", ""},
		{"10.4.30-MariaDB", "10.6.20-MariaDB", "", "upgrades the donor's files on start"},
		{"10.6.20-MariaDB", "10.11.6-MariaDB", "", "Upgrade after a crash is not supported"},
		{"10.8.8-MariaDB", "11.4.2-MariaDB", "", "of one redo format (10.8 and later)"},
		{"", "10.11.6-MariaDB", "", "server versions not compared"},
	} {
		d := Preflight{Version: tc.donor, PageSize: 16384}
		j := Preflight{Version: tc.joiner, PageSize: 16384}
		notes, err := d.Check(j)
		if tc.refuse == "" && err != nil || tc.refuse != "" && (err == nil || !strings.Contains(err.Error(), tc.refuse)) {
			t.Errorf("%s → %s: %v, want refusal %q", tc.donor, tc.joiner, err, tc.refuse)
		}
		if all := strings.Join(notes, "\n"); !strings.Contains(all, tc.note) || tc.note == "" && all != "" {
			t.Errorf("%s → %s: notes %q, want %q", tc.donor, tc.joiner, all, tc.note)
		}
	}
}

// fspHeader is the start of a tablespace's first page with FSP flags.
func fspHeader(flags uint32) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint16(b[24:], 8) // FIL_PAGE_TYPE_FSP_HDR
	binary.BigEndian.PutUint32(b[fspFlagsAt:], flags)
	return b
}

func TestPageSizeFromHeader(t *testing.T) {
	for _, tc := range []struct {
		flags uint32
		want  int64
	}{
		{0x15, 16 << 10},        // full_crc32 (10.5+ default): marker, ssize 5
		{0x13, 4 << 10},         // full_crc32, 4k
		{0x17, 64 << 10},        // full_crc32, 64k
		{0x0, 16 << 10},         // the old format, 16k
		{0x21, 16 << 10},        // the old format with atomic blobs and post-antelope bits
		{4 << 6, 8 << 10},       // the old format, 8k
		{7<<6 | 0x21, 64 << 10}, // the old format, 64k
		{0x12, 0},               // full_crc32, ssize 2: invalid
	} {
		got, err := pageSizeFromHeader(fspHeader(tc.flags))
		if got != tc.want || (err != nil) != (tc.want == 0) {
			t.Errorf("flags %#x: %d, %v; want %d", tc.flags, got, err, tc.want)
		}
	}
	if _, err := pageSizeFromHeader(make([]byte, 10)); err == nil {
		t.Error("a short header decoded")
	}
	if _, err := pageSizeFromHeader(bytes.Repeat([]byte("x"), 64)); err == nil {
		t.Error("a page of another type decoded")
	}
	p := filepath.Join(t.TempDir(), "ibdata1")
	os.WriteFile(p, fspHeader(0x15), 0o600)
	if n, err := PageSizeOf(p); n != 16<<10 || err != nil {
		t.Errorf("PageSizeOf: %d, %v", n, err)
	}
	if systemTablespace("ibdata1:12M;ibdata2:50M:autoextend") != "ibdata1" || systemTablespace("") != "ibdata1" || systemTablespace("sys:10M") != "sys" {
		t.Error("systemTablespace")
	}
}

func FuzzPageSizeFromHeader(f *testing.F) {
	f.Add(fspHeader(0x15))
	f.Add(fspHeader(4 << 6))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := pageSizeFromHeader(b)
		if err == nil && (n < 4<<10 || n > 64<<10 || n&(n-1) != 0) {
			t.Fatalf("page size %d", n)
		}
	})
}

func TestServerVersion(t *testing.T) {
	m := reServerVersion.FindStringSubmatch("/usr/sbin/mariadbd  Ver 10.11.6-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)")
	if m == nil || m[1] != "10.11.6-MariaDB-0+deb12u1" {
		t.Errorf("got %v", m)
	}
}
