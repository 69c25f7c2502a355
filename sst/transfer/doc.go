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
// pwrites them and counts the bytes covered. An end record carries the
// file's final size. Raw streams carry a sequence number and are put back
// in order on the joiner.
//
// # Compression and TLS
//
// A compressor naming lz4 uses the built-in lz4 block codec per chunk; the
// checksum covers the uncompressed bytes, so it verifies end to end. Any
// other compressor is a shell filter (sh -c) placed on each data
// connection, below TLS; the joiner then needs a decompressor. encrypt=1
// (the stock openssl/xbcrypt stream cipher with a shared key) is refused
// with an explanation: use encrypt=3 or 4, or ssl-mode, with certificates.
//
// # Why no sendfile
//
// Donor files may change while they are read (the first, unlocked pass of
// native-copy), so the checksum must be computed over exactly the bytes
// sent: the donor preads a chunk into a pooled buffer, checksums it and
// writes that buffer. sendfile after a separate checksum read would race
// with the server's writes and costs the same number of copies.
package transfer
