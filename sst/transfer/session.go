package transfer

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
)

var errTODO = errors.New("transfer: not implemented yet")

// Listener is the joiner's end: it listens on the SST address and accepts
// one donor session.
type Listener struct {
	addr   Address
	secret string
	opts   Options
}

// Listen listens on addr (port 0 picks a free port). opts.Role is set to
// Joiner.
func Listen(ctx context.Context, addr Address, opts Options) (*Listener, error) {
	return nil, errTODO
}

// Addr is the address to print after "ready": the host as given and the
// port actually bound. Path is left empty for the method to fill in.
func (l *Listener) Addr() Address { return l.addr }

// Secret is the random token a donor must prove it knows; the method puts
// it in the address it prints (hex, so it passes the server's address
// character check).
func (l *Listener) Secret() string { return l.secret }

// Accept waits for a donor's session: a control connection and all its data
// connections, each with a valid handshake. Stray connections are refused
// and logged. It fails after opts.InitialTimeout.
func (l *Listener) Accept(ctx context.Context) (*Session, error) { return nil, errTODO }

// Close stops listening; an accepted session stays up.
func (l *Listener) Close() error { return nil }

// Session is an established transfer between a donor and a joiner.
type Session struct {
	role Role
	peer string
}

// Dial connects a donor to the joiner at addr, proving knowledge of secret.
// opts.Role is set to Donor.
func Dial(ctx context.Context, addr Address, secret string, opts Options) (*Session, error) {
	return nil, errTODO
}

// Role is this side's role.
func (s *Session) Role() Role { return s.role }

// Peer names the other side for errors and logs, e.g. "joiner [::1]:4444".
func (s *Session) Peer() string { return s.peer }

// Send sends a control message; body is marshalled to JSON (nil for none).
func (s *Session) Send(kind string, body any) error { return errTODO }

// Recv returns the next control message from the peer. An error message from
// the peer is returned as a *PeerError.
func (s *Session) Recv(ctx context.Context) (Message, error) { return Message{}, errTODO }

// Expect receives the next message, fails unless it is of the given kind,
// and decodes its body into v (nil to ignore it).
func (s *Session) Expect(ctx context.Context, kind string, v any) error { return errTODO }

// Abort tells the peer why this side gives up, then closes the session.
func (s *Session) Abort(err error) {}

// Close tears the session down: connections closed, filter processes
// waited for. It is safe to call more than once.
func (s *Session) Close() error { return nil }

// SetTotal sets the total payload bytes for progress; the donor's value is
// forwarded to the joiner.
func (s *Session) SetTotal(n int64) {}

// Done is the payload bytes moved so far.
func (s *Session) Done() int64 { return 0 }

// SendDir makes the joiner create directory name (slash-separated, relative
// to the joiner's root) with mode's permission bits.
func (s *Session) SendDir(ctx context.Context, name string, mode fs.FileMode) error { return errTODO }

// SendSymlink makes the joiner create a symlink name pointing at target.
// The joiner refuses it unless its Sink allows symlinks.
func (s *Session) SendSymlink(ctx context.Context, name, target string) error { return errTODO }

// SendFile queues the whole of f (its size when called) for the joiner's
// file name, and takes ownership of f, which is closed once sent. It
// returns when the chunks are queued; errors surface here or at Sync or
// Finish. The joiner truncates any existing file of that name.
func (s *Session) SendFile(ctx context.Context, name string, f *os.File) error { return errTODO }

// SendRanges queues only ranges of f for the joiner's existing file name,
// which is then truncated or extended to size (delta mode). It takes
// ownership of f.
func (s *Session) SendRanges(ctx context.Context, name string, f *os.File, ranges []Range, size int64) error {
	return errTODO
}

// SendStream sends r as raw stream id until EOF and returns the bytes sent.
// The joiner reads it, in order, from Stream(id).
func (s *Session) SendStream(ctx context.Context, id uint32, r io.Reader) (int64, error) {
	return 0, errTODO
}

// Sync waits until the joiner has written and checked everything queued so
// far, and returns the joiner's counts.
func (s *Session) Sync(ctx context.Context) (Stats, error) { return Stats{}, errTODO }

// Finish ends the data: it syncs, tells the joiner no more data follows,
// and returns the joiner's final counts. The control channel stays open.
func (s *Session) Finish(ctx context.Context) (Stats, error) { return Stats{}, errTODO }

// Serve receives data into sink (nil if the donor sends no files) until the
// donor's Finish, and returns the counts. A corrupt or truncated stream
// fails it with an error naming the donor and the file; the donor is told.
func (s *Session) Serve(ctx context.Context, sink *Sink) (Stats, error) { return Stats{}, errTODO }

// Stream returns the reader of raw stream id. It reads io.EOF after the
// donor's end of the stream, and the session's error if it fails first.
// Serve must be running for data to arrive.
func (s *Session) Stream(id uint32) io.Reader { return nil }
