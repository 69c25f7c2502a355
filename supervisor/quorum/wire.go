package quorum

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The peer protocol, one exchange per connection (TLS or plain TCP):
//
//	server → client  hello  {"v":1,"nonce":Ns}
//	client → server  ask    {"v":1,"nonce":Nc,"mac":HMAC(k,"ask"|Ns|Nc)}
//	server → client  state  {"v":1,"state":{...},"mac":HMAC(k,"state"|Nc|Ns|state)}
//
// Each message is a frame: a 4-byte big-endian length, then that many
// bytes of JSON. With a shared secret k each side proves it knows k over
// the other's fresh nonce, so a recorded exchange cannot be replayed in
// either direction; without one (TLS alone) the macs are empty.
const (
	protoVersion = 1
	maxFrame     = 64 << 10
	nonceLen     = 32
)

// ErrAuth is what a failed authentication wraps, on either side.
var ErrAuth = errors.New("peer authentication failed")

type hello struct {
	V     int    `json:"v"`
	Nonce string `json:"nonce"`
}

type ask struct {
	V     int    `json:"v"`
	Nonce string `json:"nonce"`
	MAC   string `json:"mac,omitempty"`
}

type reply struct {
	V     int             `json:"v"`
	State json.RawMessage `json:"state,omitempty"`
	Error string          `json:"error,omitempty"`
	MAC   string          `json:"mac,omitempty"`
}

// writeFrame writes v as one frame.
func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(b), maxFrame)
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

// readFrame reads one frame into v.
func readFrame(r io.Reader, v any) error {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return fmt.Errorf("read frame: %w", err)
	}
	n := binary.BigEndian.Uint32(h[:])
	if n > maxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", n, maxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("read frame: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode frame: %w", err)
	}
	return nil
}

// NewInstance returns a fresh State.Instance.
func NewInstance() string { return newNonce()[:32] }

func newNonce() string {
	b := make([]byte, nonceLen)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func validNonce(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == nonceLen
}

// mac is HMAC-SHA256 over the parts, each length-prefixed so that no two
// different part lists collide.
func mac(secret []byte, parts ...string) string {
	if len(secret) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, secret)
	for _, p := range parts {
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(p)))
		m.Write(l[:])
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil))
}

func macOK(secret []byte, got string, parts ...string) bool {
	if len(secret) == 0 {
		return true
	}
	return hmac.Equal([]byte(got), []byte(mac(secret, parts...)))
}

// DecodeState decodes and checks a peer's state.
func DecodeState(b []byte) (*State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	return &s, nil
}

func (s *State) check() error {
	switch {
	case s.ID == "" || len(s.ID) > 256:
		return errors.New("bad id")
	case len(s.Instance) > 64:
		return errors.New("bad instance")
	case !s.Phase.valid():
		return fmt.Errorf("bad phase %q", s.Phase)
	case s.Seqno < -1:
		return fmt.Errorf("bad seqno %d", s.Seqno)
	case s.UUID != "" && !ValidUUID(s.UUID):
		return fmt.Errorf("bad uuid %q", s.UUID)
	case len(s.Status) > 1024:
		return errors.New("bad status")
	case s.Decision != nil && (len(s.Decision.Reason) > 4096 || len(s.Decision.Peers) > 4096 || len(s.Decision.Chosen) > 256 || len(s.Decision.Members) > maxMembers):
		return errors.New("bad decision")
	}
	if d := s.Donation; d != nil && (d.Method == "" || len(d.Method) > 64 || len(d.Joiner) > 256 || d.Sent < 0 || d.Total < 0) {
		return errors.New("bad donation")
	}
	if v := s.View; v != nil {
		if !ValidUUID(v.MyUUID) || !ValidUUID(v.ViewID) || v.Seq < 0 || len(v.Members) == 0 || len(v.Members) > maxMembers {
			return errors.New("bad view")
		}
		for _, m := range v.Members {
			if !ValidUUID(m) {
				return errors.New("bad view member")
			}
		}
	}
	return nil
}
