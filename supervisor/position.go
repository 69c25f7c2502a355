package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/galera-supervisor/galera-supervisor/schema"
)

// Position is a Galera position, as package schema defines it for the
// supervisor and the SST alike.
type Position = schema.Position

// ParsePosition parses "uuid:seqno[,gtid]".
func ParsePosition(s string) (Position, error) { return schema.ParsePosition(s) }

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
