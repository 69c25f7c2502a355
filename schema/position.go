package schema

import (
	"fmt"
	"strconv"
	"strings"
)

// ZeroUUID is the cluster UUID of a node that never joined a cluster.
const ZeroUUID = "00000000-0000-0000-0000-000000000000"

// SeqnoUnknown is the seqno Galera writes while the state is unsafe.
const SeqnoUnknown = -1

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
	if !ok || !ValidUUID(uuid) {
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

// ValidUUID reports whether s is a UUID as Galera writes them (36
// characters, hex and dashes).
func ValidUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
