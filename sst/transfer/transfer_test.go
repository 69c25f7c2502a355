package transfer

import (
	"context"
	"path/filepath"
	"testing"
)

// roundtrip sends a tree from donor to joiner and checks it arrived whole.
func roundtrip(t *testing.T, host string, jo, do Options) {
	t.Helper()
	chunk := 64 << 10
	do.ChunkSize = chunk
	src, dst := t.TempDir(), t.TempDir()
	makeTree(t, src, chunk)
	j, d := pair(t, host, jo, do)
	sink, err := OpenSink(dst, SinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ctx := testCtx(t)
	type res struct {
		st  Stats
		err error
	}
	served := make(chan res, 1)
	go func() { st, err := j.Serve(ctx, sink); served <- res{st, err} }()
	total := sendTree(ctx, t, d, src)
	dst1, err := d.Sync(ctx)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if dst1.Bytes != total {
		t.Errorf("joiner acknowledged %d bytes at sync, sent %d", dst1.Bytes, total)
	}
	// A second pass over the same tree replaces every file.
	sendTree(ctx, t, d, src)
	fin, err := d.Finish(ctx)
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	r := <-served
	if r.err != nil {
		t.Fatalf("serve: %v", r.err)
	}
	if fin.Files != 18 || r.st.Files != 18 || fin.Bytes != 2*total {
		t.Errorf("finish stats %+v, serve stats %+v, want 18 files, %d bytes", fin, r.st, 2*total)
	}
	// The control channel outlives the data.
	if err := d.Send("complete", map[string]int64{"bytes": total}); err != nil {
		t.Fatal(err)
	}
	var body map[string]int64
	if err := j.Expect(ctx, "complete", &body); err != nil || body["bytes"] != total {
		t.Fatalf("expect complete: %v %v", body, err)
	}
	if err := j.Send("verified", nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Expect(ctx, "verified", nil); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
}

func TestRoundtripPlain(t *testing.T) { roundtrip(t, "127.0.0.1", Options{}, Options{}) }

func TestRoundtripOneStream(t *testing.T) {
	roundtrip(t, "127.0.0.1", Options{}, Options{Streams: 1})
}

func TestRoundtripIPv6(t *testing.T) { roundtrip(t, "::1", Options{}, Options{Streams: 3}) }

func TestRoundtripLZ4(t *testing.T) {
	roundtrip(t, "127.0.0.1", Options{Decompressor: "lz4 -d"}, Options{Compressor: "lz4 -1"})
}

func TestRoundtripFilter(t *testing.T) {
	roundtrip(t, "127.0.0.1", Options{Decompressor: "gzip -dc"}, Options{Compressor: "gzip -c -1"})
}

func TestRoundtripTLS(t *testing.T) {
	c := makeCerts(t)
	jo := Options{TLS: TLS{Mode: TLSVerifyCA, Cert: c.joinerCert, Key: c.joinerKey, CA: c.ca}}
	do := Options{TLS: TLS{Mode: TLSVerifyIdentity, Cert: c.donorCert, Key: c.donorKey, CA: filepath.Dir(c.ca)}}
	roundtrip(t, "127.0.0.1", jo, do)
}

func TestRoundtripTLSAndLZ4(t *testing.T) {
	c := makeCerts(t)
	jo := Options{TLS: TLS{Mode: TLSVerifyCA, Cert: c.joinerCert, Key: c.joinerKey, CA: c.ca}}
	do := Options{Compressor: "lz4", TLS: TLS{Mode: TLSVerifyCA, Cert: c.donorCert, Key: c.donorKey, CA: c.ca}}
	roundtrip(t, "127.0.0.1", jo, do)
}

var _ = context.Background
