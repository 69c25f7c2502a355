package transfer

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
)

// Control messages and handshakes travel as [u32 length][u32 CRC32C][JSON].
const maxMessage = 16 << 20

func writeMsg(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxMessage {
		return fmt.Errorf("control message of %d bytes exceeds %d", len(b), maxMessage)
	}
	buf := make([]byte, 8+len(b))
	binary.LittleEndian.PutUint32(buf, uint32(len(b)))
	binary.LittleEndian.PutUint32(buf[4:], crc32.Checksum(b, castagnoli))
	copy(buf[8:], b)
	_, err = w.Write(buf)
	return err
}

func readMsg(r io.Reader, limit int, v any) error {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return err
	}
	n := int(binary.LittleEndian.Uint32(h[:]))
	if n > limit {
		return fmt.Errorf("%w: control message of %d bytes exceeds %d", errCorrupt, n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return unexpected(err)
	}
	if crc32.Checksum(b, castagnoli) != binary.LittleEndian.Uint32(h[4:]) {
		return fmt.Errorf("%w: control message checksum mismatch", errCorrupt)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: control message: %v", errCorrupt, err)
	}
	return nil
}

// ProtocolVersion is the version of the wire protocol; peers must agree.
const ProtocolVersion = 1

const protoName = "galera-supervisor-sst"

// joinerHello opens every connection, from the joiner.
type joinerHello struct {
	Proto   string `json:"proto"`
	Version int    `json:"version"`
	Nonce   string `json:"nonce"`
	Error   string `json:"error,omitempty"` // the joiner refuses before any handshake
}

// donorHello answers it.
type donorHello struct {
	Proto   string `json:"proto"`
	Version int    `json:"version"`
	Session string `json:"session"`
	Conn    string `json:"conn"` // "control" or "data"
	Index   int    `json:"index"`
	Streams int    `json:"streams"`
	Chunk   int    `json:"chunk"`
	Codec   string `json:"codec,omitempty"`  // "", "lz4" or "filter"
	Filter  string `json:"filter,omitempty"` // the donor's compressor command
	Nonce   string `json:"nonce"`
	MAC     string `json:"mac"`
}

// joinerReply accepts or refuses.
type joinerReply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	MAC   string `json:"mac,omitempty"`
}

func nonce() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func mac(secret string, parts ...string) string {
	m := hmac.New(sha256.New, []byte(secret))
	for _, p := range parts {
		var l [4]byte
		binary.LittleEndian.PutUint32(l[:], uint32(len(p)))
		m.Write(l[:])
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil))
}

func (h *donorHello) mac(secret, joinerNonce string) string {
	return mac(secret, "donor", joinerNonce, h.Nonce, h.Session, h.Conn, fmt.Sprint(h.Index), fmt.Sprint(h.Streams),
		fmt.Sprint(h.Chunk), h.Codec, h.Filter)
}

func joinerMAC(secret, joinerNonce, donorNonce, session string) string {
	return mac(secret, "joiner", donorNonce, joinerNonce, session)
}
