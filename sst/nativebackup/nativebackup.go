// Package nativebackup is the native-backup SST method: the donor runs
// mariadb-backup --backup --stream=mbstream, which copies InnoDB hot and
// blocks commits only for its BACKUP STAGE BLOCK_COMMIT moment, and sends
// its output through the transfer engine; the joiner extracts the mbstream
// in Go into a staging directory, runs mariadb-backup --prepare there and
// swaps the prepared snapshot in. No socat, mbstream or fixed sleeps.
//
// Control messages, donor to joiner: "nb-state" (the donor's position,
// whether this is IST, and the expected payload), then raw stream 1 (the
// mbstream). Joiner to donor: "nb-received" once everything is on disk and
// checked; only then does the donor print "done". Either side's failure
// goes to the other over the control channel, so both logs name it.
package nativebackup

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"

	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
)

// Name is the method's name: the server runs wsrep_sst_native-backup.
const Name = "native-backup"

// Module is the first path segment of the address the joiner prints; the
// second is the transfer engine's secret.
const Module = "native_backup"

// streamID is the raw transfer stream that carries the mbstream.
const streamID = 1

// Control message kinds.
const (
	msgState    = "nb-state"
	msgReceived = "nb-received"
	msgGo       = "nb-go" // the joiner's preflight passed: stream
)

// stateMsg is what the donor announces first.
type stateMsg struct {
	State string `json:"state"` // "<uuid>:<seqno> <domain>"
	IST   bool   `json:"ist"`
	Total int64  `json:"total"` // estimated mbstream payload bytes
	// Tablespaces is the donor's InnoDB data files, which the joiner's
	// --prepare holds open at once.
	Tablespaces int `json:"tablespaces,omitempty"`
	// BackupVersion is the donor's mariadb-backup version and Server its
	// server's settings, for the joiner's preflight; Preflight says the
	// donor waits for msgGo before it streams.
	BackupVersion string         `json:"backup_version,omitempty"`
	Server        *sst.Preflight `json:"server,omitempty"`
	Preflight     bool           `json:"preflight,omitempty"`
	// Tags holds the bytes of the donor's files of each tagged directory
	// (its InnoDB, Aria and binlog directories), which the joiner puts in
	// its own, and Ext the files its tables keep outside its directories
	// (DATA DIRECTORY), which go to the same path: the joiner checks each
	// place, and its space, before the backup starts. Older donors send
	// neither.
	Tags map[string]int64 `json:"tags,omitempty"`
	Ext  []sst.ExtFile    `json:"ext,omitempty"`
}

// receivedMsg is the joiner's confirmation.
type receivedMsg struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// Method implements sst.Method.
type Method struct{}

var _ sst.Method = Method{}

// transferOptions reads the engine's options the way the stock scripts read
// theirs: [sst] first; the TLS settings also from the server and backup
// groups (encgroups).
func transferOptions(s *sst.Session, role transfer.Role) (transfer.Options, error) {
	enc := []string{"--mysqld", "sst", "xtrabackup", "mariabackup"}
	lookup := func(name string) (string, bool) {
		if s.Options == nil {
			return "", false
		}
		if strings.HasPrefix(name, "ssl") || name == "encrypt" {
			return s.Options.Lookup(enc, name)
		}
		return s.Options.Lookup(sst.SSTGroups, name)
	}
	o, err := transfer.OptionsFrom(lookup, role)
	if err != nil {
		return o, sst.WithErrno(sst.EINVAL, err)
	}
	o.Method = Name
	if o.Streams == 0 {
		// One pipe feeds the connections and there is no file I/O to
		// overlap: more than 4 only add buffers.
		o.Streams = 4
	}
	o.Log = s.Log
	o.Reporter = s.Reporter()
	comp := o.Compressor
	if role == transfer.Joiner {
		comp = o.Decompressor
	}
	if comp == "" {
		comp = "none"
	}
	s.Log.Info("transfer", slog.String("tls", o.TLS.Mode.String()), slog.String("compression", comp), slog.Int64("rate_limit", o.RateLimit))
	return o, nil
}

// parseAddress splits the donor's --address: [auth@]host:port/native_backup/<secret>.
func parseAddress(raw string) (transfer.Address, string, error) {
	if i := strings.LastIndexByte(raw, '@'); i >= 0 {
		raw = raw[i+1:]
	}
	a, err := transfer.ParseAddress(raw)
	if err != nil {
		return a, "", sst.Errorf(sst.EINVAL, "native-backup: --address %q: %w", raw, err)
	}
	seg := a.Segments()
	if len(seg) < 2 || seg[0] != Module || seg[1] == "" {
		return a, "", sst.Errorf(sst.EPROTO, "native-backup: --address %q: want host:port/%s/<secret> from a native-backup joiner", raw, Module)
	}
	return a, seg[1], nil
}

// joinerPreflights reports whether the joiner's address says it checks
// the donor's state before any data moves.
func joinerPreflights(a transfer.Address) bool {
	seg := a.Segments()
	return len(seg) >= 3 && seg[2] == preflightSeg
}

// donorState is the position the donor announces, from --gtid and
// --gtid-domain-id.
func donorState(a *sst.Args) (sst.State, error) {
	st, err := sst.ParseState(strings.TrimSpace(a.GTID + " " + a.GTIDDomainID))
	if err != nil {
		return st, sst.Errorf(sst.EINVAL, "native-backup: --gtid %q --gtid-domain-id %q: %w", a.GTID, a.GTIDDomainID, err)
	}
	return st, nil
}

var errNoCoordinates = errors.New("no Galera coordinates in the snapshot")

// readCoordinates reads the first line of donor_galera_info, falling back to
// xtrabackup_galera_info (wsrep_sst_mariabackup.sh step 12).
func readCoordinates(read func(name string) ([]byte, error)) (sst.State, error) {
	var errs []error
	for _, name := range []string{"donor_galera_info", "xtrabackup_galera_info", "mariadb_backup_galera_info"} {
		b, err := read(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		line, _, _ := strings.Cut(string(b), "\n")
		st, err := sst.ParseState(strings.TrimSpace(line))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		return st, nil
	}
	return sst.State{}, fmt.Errorf("%w: %v", errNoCoordinates, errors.Join(errs...))
}

// LogNames are mariadb-backup's logs under the datadir, the stock names
// and the older mariabackup.* ones: sst.Run archives them before an SST.
func (Method) LogNames() []string {
	var out []string
	for _, n := range []string{BackupLog, PrepareLog, MoveLog} {
		stock, _ := sst.StockLogName(n)
		out = append(out, n, stock)
	}
	return out
}

// logPeakRSS says how much memory this process (not mariadb-backup) needed
// at most, which the issue bounds at 64 MiB.
func logPeakRSS(s *sst.Session) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.Log.Info("native-backup: peak RSS", slog.Int64("peak_rss_kib", int64(ru.Maxrss)))
	}
}
