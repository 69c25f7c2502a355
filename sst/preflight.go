package sst

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Preflight is what each side of an SST tells the other about its server
// before any data moves, so that a snapshot the joiner's server could not
// use is refused at once, not after the copy. Keys never travel: only a
// digest of each.
type Preflight struct {
	// Version is the server's (--mysqld-version), "" from an older
	// galera-supervisor.
	Version string `json:"version,omitempty"`
	// PageSize is innodb_page_size in bytes: a donor's from its system
	// tablespace's header, which fixed it when the datadir was created
	// (PageSizeFrom says where it came from); a joiner's as its server
	// will run, from its configuration.
	PageSize     int64  `json:"page_size"`
	PageSizeFrom string `json:"page_size_from,omitempty"`
	Checksum     string `json:"checksum_algorithm"`     // innodb_checksum_algorithm
	LowerCase    string `json:"lower_case_table_names"` // as configured, "0" by default
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
	p.PageSize, p.PageSizeFrom = n, "innodb_page_size"
	if s.Args != nil {
		p.Version = s.Args.MysqldVersion
		if p.Version == "" {
			p.Version = serverVersion(s.Args.Parent)
		}
	}
	if s.Args != nil && s.Args.Role == Donor {
		ibdata := filepath.Join(s.Dirs().InnoDBData, systemTablespace(s.OptionIn(ServerGroups, "innodb-data-file-path", "")))
		if n, err := PageSizeOf(ibdata); err != nil {
			s.Log.Warn("preflight: the page size from innodb_page_size", "path", ibdata, "error", err)
		} else {
			p.PageSize, p.PageSizeFrom = n, ibdata
		}
	}
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

// reServerVersion finds the version in "mariadbd --version":
// "mariadbd  Ver 10.11.6-MariaDB-0+deb12u1 for debian-linux-gnu ...".
var reServerVersion = regexp.MustCompile(`Ver\s+(\d+\.\d+\.\d+\S*)`)

// serverVersion asks the server binary that runs this SST (the joiner's
// --parent, else this process's parent, mariadbd for both roles) for its
// version; mariadbd 10.11 passes no --mysqld-version. "" when it cannot
// tell.
func serverVersion(parent int) string {
	if parent <= 0 {
		parent = os.Getppid()
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", parent))
	if base := filepath.Base(exe); err != nil || (base != "mariadbd" && base != "mysqld") {
		if exe, err = exec.LookPath("mariadbd"); err != nil {
			return ""
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, exe, "--version").Output()
	if m := reServerVersion.FindSubmatch(out); err == nil && m != nil {
		return string(m[1])
	}
	return ""
}

// systemTablespace is the first file of innodb_data_file_path
// ("ibdata1:12M:autoextend" by default).
func systemTablespace(path string) string {
	name, _, _ := strings.Cut(path, ":")
	if name = strings.TrimSpace(name); name == "" || strings.Contains(name, "/") {
		return "ibdata1"
	}
	return name
}

// PageSizeOf reads the page size of an InnoDB tablespace from the flags of
// its first page's FSP header.
func PageSizeOf(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	hdr := make([]byte, fspFlagsAt+4)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	n, err := pageSizeFromHeader(hdr)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// fspFlagsAt is where FSP_SPACE_FLAGS sits in a tablespace's first page:
// the FSP header starts at FIL_PAGE_DATA (38), the flags 16 bytes in.
const fspFlagsAt = 38 + 16

// pageSizeFromHeader decodes the page size from the first bytes of a
// system tablespace: page 0 (FIL_PAGE_OFFSET at 4), of type
// FIL_PAGE_TYPE_FSP_HDR (8, at 24), of space 0 (FSP_SPACE_ID at 38).
// MariaDB's full_crc32 format (10.4 on) marks its flags with bit 4 and
// keeps log2(size/512) in bits 0-3; the older format keeps it in bits
// 6-9, 0 meaning 16 KiB (fsp0types.h).
func pageSizeFromHeader(hdr []byte) (int64, error) {
	if len(hdr) < fspFlagsAt+4 {
		return 0, errors.New("shorter than a tablespace header")
	}
	if page, typ, space := binary.BigEndian.Uint32(hdr[4:]), binary.BigEndian.Uint16(hdr[24:]), binary.BigEndian.Uint32(hdr[38:]); page != 0 || typ != 8 || space != 0 {
		return 0, fmt.Errorf("not a system tablespace's first page (page %d, type %d, space %d)", page, typ, space)
	}
	flags := binary.BigEndian.Uint32(hdr[fspFlagsAt:])
	var ssize uint32
	if flags&(1<<4) != 0 {
		ssize = flags & 15
	} else if ssize = (flags >> 6) & 15; ssize == 0 {
		return 16 << 10, nil
	}
	if ssize < 3 || ssize > 7 {
		return 0, fmt.Errorf("FSP flags %#x: no valid page size", flags)
	}
	return 512 << ssize, nil
}

// CheckPreflight compares the donor's side d with this joiner's before
// any byte moves, logs what it found, and returns the refusal, if any.
func (s *Session) CheckPreflight(d Preflight, peer string) error {
	mine, err := s.LocalPreflight()
	if err != nil {
		return err
	}
	s.Log.Info("preflight", slog.String("sst_peer", peer),
		slog.String("donor_version", orUnknown(d.Version)), slog.String("joiner_version", orUnknown(mine.Version)),
		slog.Int64("donor_innodb_page_size", d.PageSize), slog.String("donor_innodb_page_size_from", orUnknown(d.PageSizeFrom)),
		slog.Int64("joiner_innodb_page_size", mine.PageSize),
		slog.String("donor_innodb_checksum_algorithm", d.Checksum), slog.String("joiner_innodb_checksum_algorithm", mine.Checksum),
		slog.String("donor_lower_case_table_names", d.LowerCase), slog.String("joiner_lower_case_table_names", mine.LowerCase),
		slog.String("donor_key_plugin", d.KeyPlugin), slog.String("joiner_key_plugin", mine.KeyPlugin),
		slog.Int("donor_key_ids", len(d.Keys)), slog.Int("joiner_key_ids", len(mine.Keys)))
	notes, err := d.Check(mine)
	for _, n := range notes {
		s.Log.Info("preflight finding", slog.String("sst_peer", peer), slog.String("finding", n))
	}
	return err
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
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
	notes = append(notes, d.checkVersion(j, refuse)...)
	if d.PageSize != j.PageSize {
		from := ""
		if d.PageSizeFrom != "" {
			from = " (" + d.PageSizeFrom + ")"
		}
		refuse("innodb_page_size: donor %d%s, joiner %d: the datadir's page size is fixed when it is created; set innodb_page_size=%d in the joiner's configuration", d.PageSize, from, j.PageSize, d.PageSize)
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

// checkVersion compares the servers' versions: a joiner's server cannot
// read the redo log and data files of a newer redo format (MariaDB does
// not downgrade); an older donor's files the joiner's server upgrades on
// start, as after an rsync SST, which is only worth a note.
func (d Preflight) checkVersion(j Preflight, refuse func(string, ...any)) []string {
	if d.Version == "" || j.Version == "" {
		return []string{"server versions not compared (a side of an older galera-supervisor, or no --mysqld-version)"}
	}
	dg, dname := RedoFormat(d.Version)
	jg, jname := RedoFormat(j.Version)
	switch {
	case dg > jg && jg >= 0:
		refuse("server version: donor %s (redo format of MariaDB %s), joiner %s (%s): the joiner's server cannot read the donor's newer redo log and data files, and MariaDB does not downgrade; upgrade the joiner to the donor's major, or name a donor of the joiner's in wsrep_sst_donor", d.Version, dname, j.Version, jname)
	case dg < jg && dg >= 0:
		return []string{fmt.Sprintf("server version: donor %s (redo format of MariaDB %s), joiner %s (%s): the joiner's server upgrades the donor's files on start, as after an rsync SST; if it refuses a redo log written before the upgrade (\"Upgrade after a crash is not supported\"), use native-backup with [sst] prepare-mariadb-backup", d.Version, dname, j.Version, jname)}
	case majorOf(d.Version) != majorOf(j.Version):
		return []string{fmt.Sprintf("server version: donor %s, joiner %s, of one redo format (%s)", d.Version, j.Version, dname)}
	}
	return nil
}

// RedoFormat is the generation of the InnoDB redo-log format of a server
// version, and its range in words: the format changed in 10.5 and in
// 10.8; mariadb-backup --prepare reads only its own (MDEV-27437), and a
// server reads no newer one. -1 for a version it cannot read.
func RedoFormat(version string) (int, string) {
	major, minor, ok := versionOf(version)
	if !ok {
		return -1, "unknown"
	}
	switch v := major*100 + minor; {
	case v < 1005:
		return 0, "before 10.5"
	case v < 1008:
		return 1, "10.5 to 10.7"
	}
	return 2, "10.8 and later"
}

var reVersion = regexp.MustCompile(`^(\d+)\.(\d+)`)

func versionOf(version string) (major, minor int, ok bool) {
	m := reVersion.FindStringSubmatch(strings.TrimSpace(version))
	if m == nil {
		return 0, 0, false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, true
}

// majorOf is "10.11" of "10.11.6-MariaDB".
func majorOf(version string) string {
	major, minor, ok := versionOf(version)
	if !ok {
		return version
	}
	return fmt.Sprintf("%d.%d", major, minor)
}

func orNone(s string) string {
	if s == "" {
		return "no key management plugin"
	}
	return s
}
