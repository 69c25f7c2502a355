// Package nativecopy is the native-copy SST method: a physical copy of the
// donor's datadir, as the rsync method makes, over the sst/transfer engine.
//
// It differs from rsync in three ways. The donor copies everything first
// without any lock, catches up (still unlocked) on files the server changed
// meanwhile, then asks the server for its write lock ("flush tables") and
// sends under it only what may have changed since: the InnoDB redo and Aria
// logs always, and every file whose size or mtime moved, or whose mtime is
// too recent to tell. A changed file the joiner already holds is patched:
// the joiner returns block hashes of its staged copy and the donor sends
// the blocks that differ (blocks of an InnoDB page, see delta.go). The lock is held for that last pass only.
// The joiner receives into a staging directory and swaps it in only once
// everything is there and verified (package sst's Staging). And with
// [sst] delta (by default for an old datadir of the donor's cluster) a
// joiner that still holds an older datadir sends the donor per-page
// hashes of its files and receives only the pages that differ (the job of
// rsync_wan), still into staging.
//
// Why the second pass is consistent: under the lock the server makes no
// new redo. The donor first re-sends the redo log and waits until the joiner
// has it, and only then looks at the other files. Every file it does not
// re-send is unchanged since it was read, so it holds every page flushed
// before the checkpoint in the copied redo log was written; every page
// changed later is re-read after that checkpoint. InnoDB recovery on the
// joiner then brings all pages to the copied log's end.
package nativecopy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/readback"
	"github.com/galera-supervisor/galera-supervisor/sst/transfer"
)

// Name is the method's name: the server runs it as wsrep_sst_native-copy.
const Name = "native-copy"

// protocolVersion is checked in the donor's hello.
const protocolVersion = 1

// Method implements sst.Method.
type Method struct{}

// Control messages, in order: donor "hello"; joiner "delta" (its block
// hashes, in batches, when it has any) and "plan" (space checked); donor
// data ("hashreq" and the joiner's "hashes" between), then "manifest";
// joiner "verified".
type hello struct {
	Version int    `json:"version"`
	Bypass  bool   `json:"bypass,omitempty"`
	State   string `json:"state,omitempty"`   // bypass: the position to report
	Cluster string `json:"cluster,omitempty"` // the donor's cluster UUID: delta=auto wants the joiner's the same
	Total   int64  `json:"total"`
	Files   int    `json:"files"`
	// Tags holds the bytes of each tagged directory's files (the rest of
	// Total goes to the datadir), and Ext the files that go outside the
	// joiner's directories: the joiner checks where each goes, and its
	// space, before any byte moves.
	Tags map[string]int64 `json:"tags,omitempty"`
	Ext  []sst.ExtFile    `json:"ext,omitempty"`
	// Preflight is the donor's server, for the joiner to compare with its
	// own before any byte moves.
	Preflight *sst.Preflight `json:"preflight,omitempty"`
	// DeltaBlock is the block the donor compares a delta's hashes in
	// (its innodb_page_size); an older donor names none, and compares
	// 1 MiB blocks hashed in hex.
	DeltaBlock int64 `json:"delta_block,omitempty"`
}

// plan ends the joiner's "delta" batches. Delta is an older joiner's
// hashes (in 1 MiB blocks, which a donor of this version does not use).
type plan struct {
	Delta []deltaFile `json:"delta,omitempty"`
}

// hashReq asks the joiner for the block hashes of staged files, in Block
// bytes a block; it answers with those it has, in "hashes" batches
// (deltaBatch) until one says no More. A joiner asked by an older donor
// (no Block) answers none: those files go whole.
type hashReq struct {
	Names []string `json:"names"`
	Block int64    `json:"block,omitempty"`
	// Only limits the hashing of a file to the blocks overlapping these
	// ranges (a redo log sent sparse: reading its holes would fill the
	// joiner's page cache with zeros).
	Only map[string][]transfer.Range `json:"only,omitempty"`
}

type manifest struct {
	State string      `json:"state"`
	Files []manifestF `json:"files"`
}

type manifestF struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// entries is the manifest as sst.Placement.Finish takes it: wire names.
func (m manifest) entries() []sst.ManifestEntry {
	out := make([]sst.ManifestEntry, len(m.Files))
	for i, f := range m.Files {
		out[i] = sst.ManifestEntry{Path: f.Name, Size: f.Size}
	}
	return out
}

// transferOptions reads the engine's options: the ssl-* options from the
// server groups and [sst] (the stock encgroups), everything else from [sst].
func transferOptions(s *sst.Session, role transfer.Role) (transfer.Options, error) {
	lookup := func(name string) (string, bool) {
		groups := sst.SSTGroups
		if strings.HasPrefix(name, "ssl") {
			groups = sst.EncGroups
		}
		if s.Options == nil {
			return "", false
		}
		return s.Options.Lookup(groups, name)
	}
	o, err := transfer.OptionsFrom(lookup, role)
	if err != nil {
		return o, sst.Errorf(sst.EINVAL, "%s: %w", s.Method, err)
	}
	o.Method = s.Method
	if o.ChunkSize == 0 {
		// Each data connection has one chunk in flight per side, and the
		// disk moves the most with some 32 MiB in flight (make bench: 4 MiB
		// chunks beat 1 MiB ones). A compressor's buffer doubles the memory.
		o.ChunkSize = 4 << 20
		if o.Compressor != "" {
			o.ChunkSize = 2 << 20
		}
	}
	o.Log = s.Log
	o.Reporter = s.Reporter()
	return o, nil
}

// classify gives an engine error the errno the server should see.
func classify(err error, what string) error {
	if err == nil {
		return nil
	}
	var se *sst.Error
	if errors.As(err, &se) {
		return err
	}
	var pe *transfer.PeerError
	var certErr *tls.CertificateVerificationError
	var uaErr x509.UnknownAuthorityError
	var recErr tls.RecordHeaderError
	var bad *readback.MismatchError
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &bad):
		return sst.WithErrno(sst.EIO, fmt.Errorf("%s: %w", what, err))
	case errors.As(err, &pe):
		if strings.Contains(pe.Msg, "space") {
			return sst.WithErrno(sst.ENOSPC, fmt.Errorf("%s: %w", what, err))
		}
		return sst.WithErrno(sst.EPIPE, fmt.Errorf("%s: %w", what, err))
	case errors.Is(err, syscall.EADDRINUSE):
		return sst.WithErrno(sst.EBUSY, fmt.Errorf("%s: %w", what, err))
	case errors.Is(err, syscall.ECONNREFUSED):
		return sst.WithErrno(sst.ECONNREFUSED, fmt.Errorf("%s: %w", what, err))
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return sst.WithErrno(sst.ETIMEDOUT, fmt.Errorf("%s: %w", what, err))
	case errors.Is(err, transfer.ErrTLS), errors.As(err, &certErr), errors.As(err, &uaErr), errors.As(err, &recErr):
		return sst.WithErrno(sst.EACCES, fmt.Errorf("%s: TLS: %w", what, err))
	case errors.Is(err, syscall.ENOSPC):
		return sst.WithErrno(sst.ENOSPC, fmt.Errorf("%s: %w", what, err))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return sst.WithErrno(sst.ETIMEDOUT, fmt.Errorf("%s: %w", what, err))
	}
	return sst.WithErrno(sst.EPIPE, fmt.Errorf("%s: %w", what, err))
}

// secretFrom takes the joiner's secret out of the address path
// "<method>/<secret>".
func secretFrom(a transfer.Address) (string, error) {
	seg := a.Segments()
	if len(seg) < 2 || seg[1] == "" {
		return "", sst.Errorf(sst.EINVAL, "native-copy: address %s has no secret: the joiner is not native-copy (path %q)", a, a.Path)
	}
	return seg[1], nil
}
