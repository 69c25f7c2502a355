package sst

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/galera-supervisor/galera-supervisor/schema"
)

// Protocol writes the lines the server reads from an SST process's stdout
// (wsrep_sst.cc sst_joiner_thread and sst_donor_thread). It enforces the
// order the server depends on: a joiner's first line is "ready", a
// coordinates or "done" line is the last, and progress lines appear only
// with --progress 1. Every line is flushed at once.
type Protocol struct {
	mu       sync.Mutex
	w        *bufio.Writer
	role     Role
	progress bool
	ready    bool // joiner printed ready
	final    bool // coordinates or done printed
}

// Line length limits of the server's fgets buffers.
const (
	maxJoinerLine = 512
	maxDonorLine  = 128
)

// NewProtocol writes protocol lines for role to w (the process's stdout).
func NewProtocol(w io.Writer, role Role, progress bool) *Protocol {
	return &Protocol{w: bufio.NewWriter(w), role: role, progress: progress}
}

var errProtocolOrder = errors.New("protocol line out of order")

func (p *Protocol) line(s string) error {
	max := maxDonorLine
	if p.role == Joiner {
		max = maxJoinerLine
	}
	if len(s)+1 >= max {
		return fmt.Errorf("sst: protocol line %.40q... is %d bytes, the server reads at most %d", s, len(s), max-1)
	}
	if strings.ContainsAny(s, "\n\r") {
		return fmt.Errorf("sst: protocol line %q has a line break", s)
	}
	if _, err := p.w.WriteString(s + "\n"); err != nil {
		return fmt.Errorf("sst: write to server: %w", err)
	}
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("sst: write to server: %w", err)
	}
	return nil
}

// Ready prints "ready <addr>", the joiner's first line; addr is what the
// server sends to the donor as the SST request.
func (p *Protocol) Ready(addr string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.role != Joiner || p.ready || p.final {
		return fmt.Errorf("sst: ready: %w", errProtocolOrder)
	}
	if addr == "" {
		return fmt.Errorf("sst: ready: empty address")
	}
	p.ready = true
	return p.line("ready " + addr)
}

// Total starts a progress stage of n bytes; a no-op without --progress 1.
func (p *Protocol) Total(n int64) error { return p.progressLine("total", n) }

// Complete reports n bytes done in the current stage; a no-op without
// --progress 1.
func (p *Protocol) Complete(n int64) error { return p.progressLine("complete", n) }

func (p *Protocol) progressLine(word string, n int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.progress {
		return nil
	}
	if p.final || (p.role == Joiner && !p.ready) {
		return fmt.Errorf("sst: %s: %w", word, errProtocolOrder)
	}
	return p.line(word + " " + strconv.FormatInt(n, 10))
}

// Coordinates prints the joiner's final line, "<uuid>:<seqno> <domain>".
// Call it only once all data is in place: the server reads it as success.
func (p *Protocol) Coordinates(st State) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.role != Joiner || !p.ready || p.final {
		return fmt.Errorf("sst: coordinates: %w", errProtocolOrder)
	}
	p.final = true
	return p.line(st.String())
}

// FlushTables asks the donor's server for FLUSH TABLES WITH READ LOCK; it
// answers by writing <datadir>/tables_flushed (see WaitTablesFlushed).
func (p *Protocol) FlushTables() error { return p.donorLine("flush tables") }

// Continue releases the donor's lock. Allowed without FlushTables.
func (p *Protocol) Continue() error { return p.donorLine("continue") }

// Done prints "done <uuid>:<seqno> <domain>": the donor's last line, only
// once the joiner has confirmed it has everything.
func (p *Protocol) Done(st State) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.role != Donor || p.final {
		return fmt.Errorf("sst: done: %w", errProtocolOrder)
	}
	p.final = true
	return p.line("done " + st.String())
}

func (p *Protocol) donorLine(s string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.role != Donor || p.final {
		return fmt.Errorf("sst: %s: %w", s, errProtocolOrder)
	}
	return p.line(s)
}

// Files the donor's server writes in answer to "flush tables".
const (
	TablesFlushedFile = "tables_flushed"
	SSTErrorFile      = "sst_error"
)

// WaitTablesFlushed waits until the server has written
// <datadir>/tables_flushed after "flush tables", and returns the state in
// it, or fails when the server wrote <datadir>/sst_error instead.
func WaitTablesFlushed(ctx context.Context, datadir string, poll time.Duration) (State, error) {
	if poll <= 0 {
		poll = 20 * time.Millisecond
	}
	path := filepath.Join(datadir, TablesFlushedFile)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if _, err := os.Stat(filepath.Join(datadir, SSTErrorFile)); err == nil {
			return State{}, Errorf(EPIPE, "sst: the server could not flush tables: %s appeared", filepath.Join(datadir, SSTErrorFile))
		}
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), ":") {
			st, err := ParseState(strings.TrimSpace(string(b)))
			if err != nil {
				return State{}, WithErrno(EPROTO, fmt.Errorf("sst: %s: %w", path, err))
			}
			return st, nil
		}
		select {
		case <-ctx.Done():
			return State{}, ctx.Err()
		case <-t.C:
		}
	}
}

// State is a Galera position with its GTID domain: "<uuid>:<seqno> <domain>".
type State struct {
	UUID   string
	Seqno  int64
	Domain string // empty when unknown
}

// ParseState parses "<uuid>:<seqno>[ <domain>]". The seqno may be -1.
func ParseState(s string) (State, error) {
	pos, dom, _ := strings.Cut(strings.TrimSpace(s), " ")
	dom = strings.TrimSpace(dom)
	uuid, seq, ok := strings.Cut(pos, ":")
	if !ok {
		return State{}, fmt.Errorf("state %q: want <uuid>:<seqno>", s)
	}
	if !schema.ValidUUID(uuid) {
		return State{}, fmt.Errorf("state %q: bad uuid", s)
	}
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil || n < -1 {
		return State{}, fmt.Errorf("state %q: bad seqno", s)
	}
	if dom != "" {
		if _, err := strconv.ParseUint(dom, 10, 32); err != nil {
			return State{}, fmt.Errorf("state %q: bad domain id", s)
		}
	}
	return State{UUID: uuid, Seqno: n, Domain: dom}, nil
}

// String renders "<uuid>:<seqno> <domain>", without the domain when unset.
func (s State) String() string {
	out := s.UUID + ":" + strconv.FormatInt(s.Seqno, 10)
	if s.Domain != "" {
		out += " " + s.Domain
	}
	return out
}
