// Package supervisor runs one MariaDB Galera node's lifecycle: it reads
// grastate.dat, recovers the position with mariadbd --wsrep-recover when
// the seqno is unknown, starts mariadbd as its child with a notify socket
// and a progress socket of its own, watches the node's health, tells
// systemd the truth through package notify, and stops the node cleanly,
// leaving no process behind.
package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/galera-supervisor/galera-supervisor/schema"
)

// Grastate is Galera's saved state, grastate.dat in the datadir.
type Grastate struct {
	Version string `json:"version"`
	UUID    string `json:"uuid"`
	// Seqno is -1 while the node runs or after a crash: the position must
	// then be recovered from InnoDB with --wsrep-recover.
	Seqno           int64 `json:"seqno"`
	SafeToBootstrap bool  `json:"safe_to_bootstrap"`
}

// ZeroUUID is the cluster UUID of a node that never joined a cluster.
const ZeroUUID = schema.ZeroUUID

// SeqnoUnknown is the seqno Galera writes while the state is unsafe.
const SeqnoUnknown = schema.SeqnoUnknown

// grastateMax is Galera's limit on the file's size (saved_state.cpp).
const grastateMax = 4096

// ErrBadGrastate is what a grastate.dat that does not parse wraps: empty
// or cut short by a crash while Galera rewrote it, or garbled.
var ErrBadGrastate = errors.New("grastate")

// ParseGrastate parses grastate.dat as Galera does: line by line, a
// "key:" token then its value; '#' starts a comment; unknown keys and other
// lines are ignored. A bad value is an error naming the line.
func ParseGrastate(r io.Reader) (*Grastate, error) {
	// Galera assumes safe when the key is absent (files before version 2.1).
	g := &Grastate{Seqno: SeqnoUnknown, SafeToBootstrap: true}
	sc := bufio.NewScanner(io.LimitReader(r, grastateMax+1))
	sc.Buffer(make([]byte, 0, 512), grastateMax+1)
	n, size := 0, 0
	var seen struct{ uuid, seqno bool }
	for sc.Scan() {
		n++
		line := sc.Text()
		size += len(line) + 1
		if size > grastateMax+1 {
			return nil, fmt.Errorf("%w: longer than %d bytes", ErrBadGrastate, grastateMax)
		}
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		key, ok := strings.CutSuffix(fields[0], ":")
		if !ok {
			continue // Galera ignores what is not a key
		}
		val := ""
		if len(fields) > 1 {
			val = fields[1]
		}
		switch key {
		case "version":
			g.Version = val
		case "uuid":
			if !validUUID(val) {
				return nil, fmt.Errorf("%w: line %d: bad uuid %q", ErrBadGrastate, n, val)
			}
			g.UUID, seen.uuid = strings.ToLower(val), true
		case "seqno":
			s, err := strconv.ParseInt(val, 10, 64)
			if err != nil || s < SeqnoUnknown {
				return nil, fmt.Errorf("%w: line %d: bad seqno %q", ErrBadGrastate, n, val)
			}
			g.Seqno, seen.seqno = s, true
		case "safe_to_bootstrap":
			switch val {
			case "0":
				g.SafeToBootstrap = false
			case "1":
				g.SafeToBootstrap = true
			default:
				return nil, fmt.Errorf("%w: line %d: bad safe_to_bootstrap %q", ErrBadGrastate, n, val)
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: longer than %d bytes", ErrBadGrastate, grastateMax)
		}
		return nil, fmt.Errorf("grastate: read: %w", err)
	}
	if !seen.uuid {
		return nil, fmt.Errorf("%w: no uuid", ErrBadGrastate)
	}
	if !seen.seqno {
		return nil, fmt.Errorf("%w: no seqno", ErrBadGrastate)
	}
	return g, nil
}

// ReadGrastate reads path. A missing file is reported as os.ErrNotExist.
func ReadGrastate(path string) (*Grastate, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read grastate: %w", err)
	}
	defer f.Close()
	g, err := ParseGrastate(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return g, nil
}

// Position returns the saved position, which is only meaningful when the
// seqno is known.
func (g *Grastate) Position() Position { return Position{UUID: g.UUID, Seqno: g.Seqno} }

func validUUID(s string) bool { return schema.ValidUUID(s) }
