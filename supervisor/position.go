package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Position is a Galera position: the cluster state UUID and the seqno, and
// with wsrep_gtid_mode the MariaDB GTID (domain-server-seqno) after a comma.
type Position struct {
	UUID  string
	Seqno int64
	GTID  string
}

// String renders p as mariadbd prints it and --wsrep_start_position takes it.
func (p Position) String() string {
	s := p.UUID + ":" + strconv.FormatInt(p.Seqno, 10)
	if p.GTID != "" {
		s += "," + p.GTID
	}
	return s
}

// Known reports whether p says anything: 00000000-...:-1 (with a GTID of
// seqno 0, if any) is what --wsrep-recover prints for a datadir that never
// joined a cluster, and mariadbd's default wsrep_start_position.
func (p Position) Known() bool {
	return p.UUID != ZeroUUID || p.Seqno != SeqnoUnknown || p.GTID != "" && !strings.HasSuffix(p.GTID, "-0")
}

// ParsePosition parses "uuid:seqno[,gtid]".
func ParsePosition(s string) (Position, error) {
	uuid, rest, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || !validUUID(uuid) {
		return Position{}, fmt.Errorf("position %q: want uuid:seqno", s)
	}
	seq, gtid, _ := strings.Cut(rest, ",")
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil || n < SeqnoUnknown {
		return Position{}, fmt.Errorf("position %q: bad seqno", s)
	}
	if gtid != "" && !validGTID(gtid) {
		return Position{}, fmt.Errorf("position %q: bad gtid", s)
	}
	return Position{UUID: strings.ToLower(uuid), Seqno: n, GTID: gtid}, nil
}

func validGTID(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 64); err != nil {
			return false
		}
	}
	return true
}

// recoveredMarker is what mariadbd --wsrep-recover logs
// (sql/wsrep_mysqld.cc), e.g.
// "2024-05-01 10:00:00 0 [Note] WSREP: Recovered position: 5f...:12,0-1-12".
const recoveredMarker = "WSREP: Recovered position:"

// ErrNoRecoveredPosition means the log held no "Recovered position" line.
var ErrNoRecoveredPosition = errors.New("no \"WSREP: Recovered position\" in mariadbd's output")

// ParseRecovered finds the recovered position in the output of mariadbd
// --wsrep-recover. As galera_recovery does, the last such line wins.
func ParseRecovered(r io.Reader) (Position, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var (
		pos   Position
		found bool
		bad   error
	)
	for sc.Scan() {
		_, after, ok := strings.Cut(sc.Text(), recoveredMarker)
		if !ok {
			continue
		}
		fields := strings.Fields(after)
		if len(fields) == 0 {
			bad = fmt.Errorf("empty recovered position in %q", sc.Text())
			continue
		}
		p, err := ParsePosition(fields[0])
		if err != nil {
			bad = fmt.Errorf("recovered position: %w", err)
			continue
		}
		pos, found, bad = p, true, nil
	}
	if err := sc.Err(); err != nil {
		return Position{}, fmt.Errorf("read mariadbd output: %w", err)
	}
	if bad != nil {
		return Position{}, bad
	}
	if !found {
		return Position{}, ErrNoRecoveredPosition
	}
	return pos, nil
}
