package schema

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/galera-supervisor/galera-supervisor/optionfile"
)

// Account is who reads the files the options name: the unit's User=,
// which is the server's user.
type Account struct {
	Name   string
	UID    uint32
	GIDs   []uint32 // primary group first
	IsRoot bool
}

// LookupAccount finds name's uid and groups on this machine.
func LookupAccount(name string) (Account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return Account{}, err
	}
	a := Account{Name: name}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return a, fmt.Errorf("user %s: uid %q", name, u.Uid)
	}
	a.UID, a.IsRoot = uint32(uid), uid == 0
	gids, err := u.GroupIds()
	if err != nil {
		gids = []string{u.Gid}
	}
	gids = append([]string{u.Gid}, gids...)
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil && !slices.Contains(a.GIDs, uint32(n)) {
			a.GIDs = append(a.GIDs, uint32(n))
		}
	}
	return a, nil
}

// CanRead says why a cannot read the file at path, or nil: each directory
// on the way must be searchable and the file readable by a's uid, one of
// its groups, or others, as the kernel decides (ACLs are not read).
func (a Account) CanRead(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if err := a.may(dir, 1); err != nil {
			return err
		}
		if dir == "/" {
			break
		}
	}
	return a.may(abs, 4)
}

// may checks one permission bit (4 read, 1 search) of path for a.
func (a Account) may(path string, bit os.FileMode) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if a.IsRoot {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	perm := fi.Mode().Perm()
	var granted bool
	switch {
	case st.Uid == a.UID:
		granted = perm&(bit<<6) != 0
	case slices.Contains(a.GIDs, st.Gid):
		granted = perm&(bit<<3) != 0
	default:
		granted = perm&bit != 0
	}
	if granted {
		return nil
	}
	what := "read"
	if bit == 1 {
		what = "search"
	}
	return fmt.Errorf("%s cannot %s %s (owner %d:%d, mode %v)", a.Name, what, path, st.Uid, st.Gid, perm)
}

// CheckReadable reports, as errors naming file:line, each file an [sst] or
// [galera-supervisor] option names that a cannot read.
func CheckReadable(set *optionfile.Set, a Account) []Finding {
	var out []Finding
	for _, g := range []Group{SST, Supervisor} {
		for _, o := range set.Options(string(g)) {
			def := Find(g, o.Key())
			if def == nil || def.Kind != Path || def.Written || o.Value == "" {
				continue
			}
			if err := a.CanRead(o.Value); err != nil {
				out = append(out, Finding{Option: o, Error: true, Msg: fmt.Sprintf("%s=%s: %v", o.Name, o.Value, err)})
			}
		}
	}
	return out
}
