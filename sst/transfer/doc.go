// Package transfer is the byte engine under every native SST method: the
// joiner listens, the donor dials, and files or a raw byte stream cross one
// or more parallel TCP (or TLS) streams, every chunk checked by CRC32C.
// It knows nothing of datadirs; the methods decide what to send.
//
// # Sessions
//
// A session is one control connection plus Options.Streams data
// connections, all dialled by the donor to the joiner's listener:
//
//	joiner                                   donor
//	l, _ := Listen(ctx, addr, opts)
//	print "ready " + l.Addr() + "/module/" + l.Secret()
//	                                         s, _ := Dial(ctx, addr, secret, opts)
//	s, _ := l.Accept(ctx)
//	go s.Serve(ctx, sink)                    s.SendFile(ctx, "db/t.ibd", f)
//	                                         s.Sync(ctx)        // joiner has it all
//	                                         s.Finish(ctx)      // end of data
//	Serve returns
//	s.Send("verified", nil)                  s.Expect(ctx, "verified", nil)
//
// Every connection starts with a handshake: protocol version, session id,
// and an HMAC of fresh nonces keyed by the joiner's secret, so a stray or
// stale connection is refused and the donor knows it reached the right
// joiner. The secret travels in the address the server hands to the donor.
//
// # Control channel
//
// Small JSON messages in both directions (Send, Recv, Expect): manifests,
// totals, "complete" markers, the joiner's final ack. A failure on either
// side is sent to the peer as an error message, so both logs name the
// cause and the peer. Kinds starting with "_" are the engine's own.
//
// # Data frames
//
// Each data frame has a 40-byte little-endian header (kind, flags, name
// length, payload length, id, offset, raw length, CRC32C of the raw
// payload, mode, CRC32C of the header and name) followed by the name and
// the payload. File chunks carry their destination path and offset, so the
// chunks of one file may travel on any stream in any order; the joiner
// pwrites them, refuses a range it already has, and counts the bytes, so a
// file completes only when each byte the donor sent arrived once. An end
// record carries the file's final size. Raw streams carry a sequence
// number and are put back in order on the joiner.
//
// # Read-back
//
// The CRC of a chunk is the donor's digest of those bytes as it read them.
// As a file is written (every 32 MiB, and once complete) the joiner's Sink
// reads it back from disk (by direct I/O where it wrote so), beside the
// transfer, and compares each
// chunk's CRC with the donor's (package readback); every barrier waits for
// those checks, so a Sync or Finish fails with the file, its path and the
// bytes whose content on disk is not what the donor read. Only what was
// sent is read back: a patched file's ranges, not its kept blocks.
//
// # Compression and TLS
//
// A compressor naming lz4 uses the built-in lz4 block codec per chunk; the
// checksum covers the uncompressed bytes, so it verifies end to end. Any
// other compressor is a shell filter (sh -c, in its own process group,
// killed and reaped with the session) placed on each data connection,
// below TLS; the joiner then needs a decompressor. A filter cannot be
// asked to flush, so each Sync closes the compressor and starts a new one:
// the connection carries length-prefixed segments, each a complete
// compressed stream that the joiner feeds to a fresh decompressor.
//
// TLS (crypto/tls, TLS 1.2+) follows the stock options: encrypt=2 and 4
// and ssl-mode=VERIFY_CA need a CA and both sides verify the peer's chain;
// encrypt=3 and ssl-mode=REQUIRED encrypt and verify only when a CA is
// given; VERIFY_IDENTITY also checks the joiner's name. encrypt=1 (the
// stock openssl/xbcrypt stream cipher with a shared key) is refused with
// an explanation rather than silently changed into something else: use
// encrypt=3 or 4, or ssl-mode, with certificates.
//
// # Liveness
//
// The joiner fails after sst-initial-timeout when no donor connects. Both
// sides ping over the control connection and the donor over idle data
// connections; a peer silent for the idle timeout (transfer-idle-timeout,
// default 120 s) fails the session, as does TCP keepalive for a peer gone
// without a word. The stock socat waits forever (MDEV-15442).
//
// # Rate limit
//
// rlimit is shared by all data connections of the donor and counts the
// frame bytes after lz4, before any external filter and TLS.
//
// # Why no sendfile
//
// Donor files may change while they are read (the first, unlocked pass of
// native-copy), so the checksum must be computed over exactly the bytes
// sent: the donor preads a chunk into its buffer, checksums it and writes
// that buffer. sendfile after a separate checksum read would race with the
// server's writes (a false mismatch) and costs the same number of copies;
// on the joiner, splicing to the file first would write unverified data
// and need a read back to check it. Buffers are per connection and reused,
// so a steady transfer allocates nothing. With direct I/O (below) the disk
// DMAs into that buffer, so the copy sendfile would save, page cache to
// user, does not happen either: each byte is copied once per side, into
// and out of the socket.
//
// # Direct I/O
//
// What costs CPU is not the socket copies but the page cache: on a VM whose
// host takes back the guest's free memory, each fresh page-cache page is a
// fault on the host, and a cold 4.6 GB SST spent 60% of both cores filling
// and draining page-cache pages (perf, make bench). So files of 256 KiB or
// more are read and written with O_DIRECT into aligned, reused buffers:
// the disk DMA goes straight to the buffer that is checksummed and sent,
// and the donor's cache keeps the server's working set. Each data
// connection keeps one request in flight per side, hence 8 by default. The
// joiner grows a file ahead of its writes (fallocate), so that writes from
// several connections stay within its size and ext4 runs them side by side;
// the last block is padded and the file truncated to its size at its end.
// A file the donor marks cached (logs it compares again under the lock) and
// any file system or offset that refuses O_DIRECT use the page cache.
package transfer
