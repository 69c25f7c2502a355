package sst

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Preflight is what each side of an SST tells the other about its server
// before any data moves, so that a snapshot the joiner's server could not
// use is refused at once, not after the copy. Keys never travel: only a
// digest of each.
type Preflight struct {
	PageSize  int64  `json:"page_size"`              // innodb_page_size, bytes
	Checksum  string `json:"checksum_algorithm"`     // innodb_checksum_algorithm
	LowerCase string `json:"lower_case_table_names"` // as configured, "0" by default
	// KeyPlugin is the data-at-rest key management plugin whose options
	// are set ("" when none); KeyFile and Keys describe file_key_management's
	// key file: its path, and per key ID a SHA-256 of the ID and the key
	// (of the whole file, under ID "file", when it is encrypted with a
	// file_key_management_filekey).
	KeyPlugin string            `json:"key_plugin,omitempty"`
	KeyFile   string            `json:"key_file,omitempty"`
	Keys      map[string]string `json:"keys,omitempty"`
}

// LocalPreflight reads this node's side from its server options.
func (s *Session) LocalPreflight() (Preflight, error) {
	var p Preflight
	ps := s.OptionIn(ServerGroups, "innodb-page-size", "16k")
	n, err := parsePageSize(ps)
	if err != nil {
		return p, Errorf(EINVAL, "sst: innodb_page_size=%s: %v", ps, err)
	}
	p.PageSize = n
	p.Checksum = strings.ToLower(s.OptionIn(ServerGroups, "innodb-checksum-algorithm", "full_crc32"))
	p.LowerCase = s.OptionIn(ServerGroups, "lower-case-table-names", "0")
	for _, plugin := range []string{"file-key-management", "hashicorp-key-management", "aws-key-management"} {
		if s.OptionIn(ServerGroups, plugin+"-filename", "") != "" || s.OptionIn(ServerGroups, plugin+"-vault-url", "") != "" || s.OptionIn(ServerGroups, plugin+"-master-key-id", "") != "" {
			p.KeyPlugin = strings.ReplaceAll(plugin, "-", "_")
			break
		}
	}
	if p.KeyPlugin == "file_key_management" {
		p.KeyFile = s.OptionIn(ServerGroups, "file-key-management-filename", "")
		if !filepath.IsAbs(p.KeyFile) {
			p.KeyFile = filepath.Join(s.Datadir, p.KeyFile)
		}
		p.Keys, err = keyDigests(p.KeyFile, s.OptionIn(ServerGroups, "file-key-management-filekey", ""))
		if err != nil {
			return p, Errorf(EINVAL, "sst: file_key_management_filename=%s: %v", p.KeyFile, err)
		}
	}
	return p, nil
}

func parsePageSize(v string) (int64, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	mult := int64(1)
	if strings.HasSuffix(v, "k") {
		mult, v = 1024, strings.TrimSuffix(v, "k")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want 4k, 8k, 16k, 32k or 64k")
	}
	return n * mult, nil
}

// keyDigests digests the keys of a file_key_management key file: lines
// "<id>;<hex key>" ('#' comments), or, encrypted with a filekey, the file
// as a whole together with the filekey.
func keyDigests(path, filekey string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if filekey != "" {
		h := sha256.New()
		h.Write([]byte(filekey))
		h.Write([]byte{0})
		h.Write(b)
		out["file"] = hex.EncodeToString(h.Sum(nil))
		return out, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for ln := 1; sc.Scan(); ln++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		id, key, ok := strings.Cut(l, ";")
		if !ok {
			return nil, fmt.Errorf("line %d: want <id>;<hex key>", ln)
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(id) + ";" + strings.ToLower(strings.TrimSpace(key))))
		out[strings.TrimSpace(id)] = hex.EncodeToString(sum[:])
	}
	return out, sc.Err()
}

// Check compares the donor's side d with the joiner's own j. It returns
// the findings worth logging and an error for the first mismatch that
// would break the joiner's server, naming both values and what to do.
func (d Preflight) Check(j Preflight) (notes []string, err error) {
	refuse := func(format string, args ...any) {
		if err == nil {
			err = Errorf(EINVAL, "sst: preflight: "+format, args...)
		}
	}
	if d.PageSize != j.PageSize {
		refuse("innodb_page_size: donor %d, joiner %d: the datadir's page size is fixed when it is created; set innodb_page_size=%d in the joiner's configuration", d.PageSize, j.PageSize, d.PageSize)
	}
	if d.Checksum != j.Checksum {
		if strings.HasPrefix(j.Checksum, "strict_") {
			refuse("innodb_checksum_algorithm: donor %s, joiner %s: a strict algorithm refuses the donor's pages; set innodb_checksum_algorithm=%s (or a non-strict one) on the joiner", d.Checksum, j.Checksum, d.Checksum)
		} else {
			notes = append(notes, fmt.Sprintf("innodb_checksum_algorithm: donor %s, joiner %s (the donor's files keep their format)", d.Checksum, j.Checksum))
		}
	}
	if d.LowerCase != j.LowerCase {
		refuse("lower_case_table_names: donor %s, joiner %s: the joiner's server would not find the donor's tables; set lower_case_table_names=%s in the joiner's configuration", d.LowerCase, j.LowerCase, d.LowerCase)
	}
	if d.KeyPlugin != j.KeyPlugin {
		refuse("encryption key plugin: donor %q, joiner %q: the joiner could not read encrypted tables or logs; configure %s on the joiner with the donor's keys", d.KeyPlugin, j.KeyPlugin, orNone(d.KeyPlugin))
	}
	var ids []string
	for id := range d.Keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		switch jd, ok := j.Keys[id]; {
		case id == "file" && jd != d.Keys[id]:
			refuse("encryption key file: the donor's (%s) and the joiner's (%s) differ (digest, or file_key_management_filekey); copy the donor's key file and filekey to the joiner", d.KeyFile, j.KeyFile)
		case !ok:
			refuse("encryption key ID %s: in the donor's key file %s, missing from the joiner's %s; copy the donor's key file to the joiner", id, d.KeyFile, j.KeyFile)
		case jd != d.Keys[id]:
			refuse("encryption key ID %s: differs between the donor's key file %s and the joiner's %s (SHA-256 digests %.12s..., %.12s...); copy the donor's key file to the joiner", id, d.KeyFile, j.KeyFile, d.Keys[id], jd)
		}
	}
	if d.KeyPlugin != "" && err == nil {
		notes = append(notes, fmt.Sprintf("encryption: %s, %d key IDs match", d.KeyPlugin, len(ids)))
	}
	return notes, err
}

func orNone(s string) string {
	if s == "" {
		return "no key management plugin"
	}
	return s
}
