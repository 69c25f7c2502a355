package sst

import (
	"strconv"
	"strings"
)

// Role is the side of the transfer an SST process plays.
type Role string

const (
	Joiner Role = "joiner"
	Donor  Role = "donor"
)

// Args is the command line the server gives an SST process
// (wsrep_sst.cc sst_prepare_other and sst_donate_other), as the stock
// wsrep_sst_common parses it.
type Args struct {
	Role    Role   // joiner or donor; donor when --role is absent
	Address string // --address, raw
	Datadir string // --datadir, trailing slash kept as given

	DefaultsFile        string // --defaults-file
	DefaultsExtraFile   string // --defaults-extra-file
	DefaultsGroupSuffix string // --defaults-group-suffix

	Parent   int  // --parent: mariadbd's pid (joiner only)
	Progress bool // --progress 1: print total/complete lines

	Binlog      string // --binlog / --log-bin: binlog basename
	BinlogIndex string // --binlog-index / --log-bin-index
	LogBasename string // --log-basename

	Host      string // --host
	Port      int    // --port
	LocalPort int    // --local-port: donor's client port
	Socket    string // --socket: donor's unix socket
	User      string // --user (not a credential source; see Env)

	// MysqldVersion is the server's version, "10.11.6-MariaDB-0+deb12u1"
	// (--mysqld-version; mariadbd passes it to both sides).
	MysqldVersion string

	GTID         string // --gtid uuid:seqno
	GTIDDomainID string // --gtid-domain-id
	Bypass       bool   // --bypass: IST possible, send only the state

	// InnoDB and Aria directories, from the top level or --mysqld-args.
	InnoDBDataHomeDir     string
	InnoDBLogGroupHomeDir string
	InnoDBUndoDirectory   string
	AriaLogDirPath        string
	InnoDBForceRecovery   string

	// MysqldArgs is everything after --mysqld-args, as given.
	MysqldArgs []string
}

// valueFlags lists the flags that take a value, normalised (see normFlag).
var valueFlags = map[string]bool{
	"role": true, "address": true, "datadir": true,
	"defaults-file": true, "defaults-extra-file": true, "defaults-group-suffix": true,
	"parent": true, "progress": true,
	"binlog": true, "log-bin": true, "binlog-index": true, "log-bin-index": true, "log-basename": true,
	"host": true, "port": true, "local-port": true, "socket": true, "user": true, "password": true,
	"gtid": true, "gtid-domain-id": true, "mysqld-version": true,
	"innodb-data-home-dir": true, "innodb-log-group-home-dir": true, "innodb-undo-directory": true,
	"aria-log-dir-path": true, "innodb-force-recovery": true,
}

// normFlag strips the leading dashes and "loose-", and turns '_' into '-',
// as wsrep_sst_common does.
func normFlag(s string) string {
	s = strings.TrimLeft(s, "-")
	s = strings.ReplaceAll(s, "_", "-")
	s, _ = strings.CutPrefix(s, "loose-")
	return s
}

// ParseArgs parses an SST command line (argv without argv[0]). Flags take
// "--flag value" or "--flag=value"; unknown flags are ignored, as the stock
// scripts ignore them; --mysqld-args takes the rest of argv. Directory
// options found in --mysqld-args are taken when not given at the top level.
func ParseArgs(argv []string) (*Args, error) {
	a := &Args{}
	set := map[string]string{}
	for i := 0; i < len(argv); i++ {
		arg := argv[i]
		if !strings.HasPrefix(arg, "--") {
			continue // stray word: the stock parser skips it too
		}
		name, val, hasVal := strings.Cut(arg, "=")
		name = normFlag(name)
		switch name {
		case "mysqld-args":
			a.MysqldArgs = append([]string(nil), argv[i+1:]...)
			i = len(argv)
			continue
		case "bypass":
			a.Bypass = true
			continue
		}
		if !valueFlags[name] {
			continue
		}
		if !hasVal {
			if i+1 >= len(argv) {
				return nil, Errorf(EINVAL, "sst: option --%s needs a value", name)
			}
			i++
			val = argv[i]
		}
		set[name] = val
	}
	// Options of mariadbd itself that the SST needs, unless given above.
	for i := 0; i < len(a.MysqldArgs); i++ {
		name, val, hasVal := strings.Cut(a.MysqldArgs[i], "=")
		if !strings.HasPrefix(name, "--") {
			continue
		}
		name = normFlag(name)
		switch name {
		case "datadir", "innodb-data-home-dir", "innodb-log-group-home-dir", "innodb-undo-directory",
			"aria-log-dir-path", "innodb-force-recovery", "log-bin", "log-bin-index", "log-basename":
		default:
			continue
		}
		if !hasVal {
			if name == "log-bin" {
				val = "" // bare --log-bin: default basename
			} else if i+1 < len(a.MysqldArgs) && !strings.HasPrefix(a.MysqldArgs[i+1], "-") {
				i++
				val = a.MysqldArgs[i]
			}
		}
		switch name {
		case "log-bin":
			name = "binlog"
		case "log-bin-index":
			name = "binlog-index"
		}
		if _, ok := set[name]; !ok && val != "" {
			set[name] = val
		}
	}
	if v, ok := set["log-bin"]; ok {
		if _, ok := set["binlog"]; !ok {
			set["binlog"] = v
		}
	}
	if v, ok := set["log-bin-index"]; ok {
		if _, ok := set["binlog-index"]; !ok {
			set["binlog-index"] = v
		}
	}

	switch r := set["role"]; r {
	case "", "donor":
		a.Role = Donor
	case "joiner":
		a.Role = Joiner
	default:
		return nil, Errorf(EINVAL, "sst: --role %q: want joiner or donor", r)
	}
	a.Address = set["address"]
	a.Datadir = set["datadir"]
	a.DefaultsFile = set["defaults-file"]
	a.DefaultsExtraFile = set["defaults-extra-file"]
	a.DefaultsGroupSuffix = set["defaults-group-suffix"]
	a.Binlog = set["binlog"]
	a.BinlogIndex = set["binlog-index"]
	a.LogBasename = set["log-basename"]
	a.Host = set["host"]
	a.Socket = set["socket"]
	a.User = set["user"]
	a.GTID = set["gtid"]
	a.MysqldVersion = set["mysqld-version"]
	a.GTIDDomainID = set["gtid-domain-id"]
	a.InnoDBDataHomeDir = set["innodb-data-home-dir"]
	a.InnoDBLogGroupHomeDir = set["innodb-log-group-home-dir"]
	a.InnoDBUndoDirectory = set["innodb-undo-directory"]
	a.AriaLogDirPath = set["aria-log-dir-path"]
	a.InnoDBForceRecovery = set["innodb-force-recovery"]
	if a.Binlog == "0" {
		a.Binlog = ""
	}

	var err error
	if a.Parent, err = intFlag(set, "parent"); err != nil {
		return nil, err
	}
	if a.Port, err = intFlag(set, "port"); err != nil {
		return nil, err
	}
	if a.LocalPort, err = intFlag(set, "local-port"); err != nil {
		return nil, err
	}
	switch p := set["progress"]; p {
	case "", "0":
	case "1":
		a.Progress = true
	default:
		// The stock parser treats anything but "1" as off.
	}
	if a.Datadir == "" {
		return nil, Errorf(EINVAL, "sst: --datadir is missing")
	}
	if a.Role == Joiner && a.Address == "" {
		return nil, Errorf(EINVAL, "sst: joiner needs --address")
	}
	if a.Role == Donor && a.Address == "" {
		return nil, Errorf(EINVAL, "sst: donor needs --address")
	}
	if a.GTIDDomainID != "" {
		if _, err := strconv.ParseUint(a.GTIDDomainID, 10, 32); err != nil {
			return nil, Errorf(EINVAL, "sst: --gtid-domain-id %q: not a number", a.GTIDDomainID)
		}
	}
	return a, nil
}

func intFlag(set map[string]string, name string) (int, error) {
	v, ok := set[name]
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, Errorf(EINVAL, "sst: --%s %q: not a number", name, v)
	}
	return n, nil
}
