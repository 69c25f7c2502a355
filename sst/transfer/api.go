package transfer

import (
	"encoding/json"
	"fmt"
	"time"
)

// Message is one control message: a kind and a JSON body.
type Message struct {
	Kind string          `json:"kind"`
	Body json.RawMessage `json:"body,omitempty"`
}

// Decode unmarshals the body into v; an absent body leaves v as it is.
func (m Message) Decode(v any) error {
	if len(m.Body) == 0 || v == nil {
		return nil
	}
	if err := json.Unmarshal(m.Body, v); err != nil {
		return fmt.Errorf("decode %q message: %w", m.Kind, err)
	}
	return nil
}

// Range is a byte range of a file, for SendRanges.
type Range struct {
	Off, Len int64
}

// Stats count what a session moved. On the donor, Sync and Finish return
// the joiner's count, so the two can be compared.
type Stats struct {
	Files     int64 `json:"files"`     // files completed (whole or patched)
	Dirs      int64 `json:"dirs"`      // directories created
	Symlinks  int64 `json:"symlinks"`  // symlinks created
	Streams   int64 `json:"streams"`   // raw streams ended
	Bytes     int64 `json:"bytes"`     // payload bytes (file and stream data, uncompressed)
	WireBytes int64 `json:"wireBytes"` // frame bytes on the data connections, after lz4, before any filter or TLS
	// SyncTime is the joiner's final syncfs: what the disk still owed when
	// the last byte arrived.
	SyncTime time.Duration `json:"syncTime,omitempty"`
}

// PeerError is a failure the peer reported over the control channel.
type PeerError struct {
	Peer string // e.g. "donor 127.0.0.1:40112"
	Msg  string
}

func (e *PeerError) Error() string { return e.Peer + " reported: " + e.Msg }
