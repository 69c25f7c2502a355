package quorum

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

// View is Galera's saved Primary Component view, gvwstate.dat: present
// only on a node that was in a Primary Component when it stopped without a
// clean shutdown, and what pc.recovery restores.
type View struct {
	MyUUID  string   `json:"my_uuid"` // this node's gcomm UUID
	ViewID  string   `json:"view_id"` // the view's creator UUID
	Seq     int64    `json:"seq"`     // the view's sequence number
	Members []string `json:"members"` // gcomm UUIDs, in file order
}

// ErrBadView is what a gvwstate.dat that does not parse wraps.
var ErrBadView = errors.New("gvwstate")

// gvwstateMax bounds the file: a member line is under 64 bytes.
const gvwstateMax = 64 << 10

// ParseView parses gvwstate.dat as Galera writes it (gcomm View::write_stream):
//
//	my_uuid: <uuid>
//	#vwbeg
//	view_id: 3 <uuid> <seq>
//	bootstrap: 0
//	member: <uuid> <segment>
//	#vwend
func ParseView(r io.Reader) (*View, error) {
	v := &View{Seq: -1}
	sc := bufio.NewScanner(io.LimitReader(r, gvwstateMax))
	n := 0
	inView, ended := false, false
	for sc.Scan() {
		n++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "#vwbeg":
			inView = true
		case "#vwend":
			inView, ended = false, true
		case "my_uuid:":
			if len(f) < 2 || !ValidUUID(f[1]) {
				return nil, fmt.Errorf("%w: line %d: bad my_uuid", ErrBadView, n)
			}
			v.MyUUID = strings.ToLower(f[1])
		case "view_id:":
			if !inView || len(f) < 4 || !ValidUUID(f[2]) {
				return nil, fmt.Errorf("%w: line %d: bad view_id", ErrBadView, n)
			}
			seq, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil || seq < 0 {
				return nil, fmt.Errorf("%w: line %d: bad view seq %q", ErrBadView, n, f[3])
			}
			v.ViewID, v.Seq = strings.ToLower(f[2]), seq
		case "member:":
			if !inView || len(f) < 2 || !ValidUUID(f[1]) {
				return nil, fmt.Errorf("%w: line %d: bad member", ErrBadView, n)
			}
			if len(v.Members) >= maxMembers {
				return nil, fmt.Errorf("%w: more than %d members", ErrBadView, maxMembers)
			}
			v.Members = append(v.Members, strings.ToLower(f[1]))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadView, err)
	}
	switch {
	case v.MyUUID == "":
		return nil, fmt.Errorf("%w: no my_uuid", ErrBadView)
	case v.Seq < 0:
		return nil, fmt.Errorf("%w: no view_id", ErrBadView)
	case !ended:
		return nil, fmt.Errorf("%w: no #vwend (cut short)", ErrBadView)
	case len(v.Members) == 0:
		return nil, fmt.Errorf("%w: no members", ErrBadView)
	}
	return v, nil
}

// ReadView reads path; a missing file is (nil, nil): the node was not in a
// Primary Component when it stopped, or stopped cleanly.
func ReadView(path string) (*View, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read gvwstate: %w", err)
	}
	defer f.Close()
	v, err := ParseView(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// Has reports whether uuid is a member of v.
func (v *View) Has(uuid string) bool {
	for _, m := range v.Members {
		if sameNode(m, uuid) {
			return true
		}
	}
	return false
}

// sameNode reports whether two gcomm UUIDs name the same node: as
// gcomm's UUID::fixed_part_matches, they may differ in the clock sequence
// (the 4th group), which Galera bumps each time a node restarts from a
// restored view, while the member lines keep the old one.
func sameNode(a, b string) bool {
	return len(a) == 36 && len(b) == 36 && a[:19] == b[:19] && a[23:] == b[23:]
}

// Same reports whether v and w are the same view.
func (v *View) Same(w *View) bool {
	return v != nil && w != nil && v.ViewID == w.ViewID && v.Seq == w.Seq
}

const maxMembers = 256

// ValidUUID reports whether s is a UUID as Galera writes them.
func ValidUUID(s string) bool { return schema.ValidUUID(s) }
