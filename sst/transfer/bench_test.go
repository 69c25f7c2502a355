package transfer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Benchmarks move a datadir-like tree over loopback into /var/tmp (a real
// disk, unlike a tmpfs). Size with GS_BENCH_MB (default 512). The disk of
// a shared VM is noisy, so by default neither side syncs and the numbers
// measure the engine (CPU, copies, loopback); GS_BENCH_SYNC=1 adds the
// joiner's syncfs, and a sync after cp -r.
var benchSync = os.Getenv("GS_BENCH_SYNC") == "1"

var (
	benchOnce sync.Once
	benchSrc  string
	benchSize int64
)

func benchTree(b testing.TB) string {
	benchOnce.Do(func() {
		mb := 512
		if v := os.Getenv("GS_BENCH_MB"); v != "" {
			fmt.Sscan(v, &mb)
		}
		dir, err := os.MkdirTemp("/var/tmp", "gs-transfer-bench-src-")
		if err != nil {
			b.Fatal(err)
		}
		benchSrc = dir
		// One big tablespace, a redo log, and a hundred small files.
		block := make([]byte, 1<<20)
		writeFile(b, filepath.Join(dir, "seed"), len(block), 42)
		seed, _ := os.ReadFile(filepath.Join(dir, "seed"))
		os.Remove(filepath.Join(dir, "seed"))
		copy(block, seed)
		write := func(name string, mbs int) {
			p := filepath.Join(dir, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			f, err := os.Create(p)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < mbs; i++ {
				// Pages differ from one another, as real ones do.
				for j := 0; j < len(block); j += 16 << 10 {
					block[j], block[j+1], block[j+2] = byte(i), byte(i>>8), byte(j>>14)
				}
				f.Write(block)
			}
			f.Close()
		}
		big := max(mb*3/4, 1)
		write("bench/t.ibd", big)
		write("ib_logfile0", max(mb/8, 1))
		for i := 0; i < 100; i++ {
			writeFile(b, filepath.Join(dir, fmt.Sprintf("mysql/t%03d.MAD", i)), 8<<10+i*100, uint64(i))
		}
		filepath.Walk(dir, func(_ string, fi os.FileInfo, _ error) error {
			if fi.Mode().IsRegular() {
				benchSize += fi.Size()
			}
			return nil
		})
	})
	return benchSrc
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchSrc != "" {
		os.RemoveAll(benchSrc)
	}
	if manySrc != "" {
		os.RemoveAll(manySrc)
	}
	os.Exit(code)
}

func benchTransfer(b *testing.B, jo, do Options) {
	src := benchTree(b)
	b.SetBytes(benchSize)
	cpu := transferTree(b, src, jo, do)
	// CPU per GB (both sides, user+system) is steadier than MB/s here.
	b.ReportMetric(cpu.Seconds()/(float64(benchSize)*float64(b.N)/1e9), "cpu-s/GB")
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(float64(ru.Maxrss)/1024, "maxRSS-MiB")
}

// transferTree moves src over loopback into a fresh dir b.N times and
// returns the CPU time both sides used.
func transferTree(b *testing.B, src string, jo, do Options) time.Duration {
	ctx := context.Background()
	jo.NoSync = !benchSync
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst, err := os.MkdirTemp("/var/tmp", "gs-transfer-bench-dst-")
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		l, err := Listen(ctx, Address{Host: "127.0.0.1"}, jo)
		if err != nil {
			b.Fatal(err)
		}
		dch := make(chan *Session, 1)
		go func() {
			d, err := Dial(ctx, l.Addr(), l.Secret(), do)
			if err != nil {
				b.Error(err)
			}
			dch <- d
		}()
		j, err := l.Accept(ctx)
		if err != nil {
			b.Fatal(err)
		}
		l.Close()
		d := <-dch
		sink, _ := OpenSink(dst, SinkOptions{NoSync: !benchSync})
		served := make(chan error, 1)
		go func() { _, err := j.Serve(ctx, sink); served <- err }()
		sendTree(ctx, b, d, src)
		if _, err := d.Finish(ctx); err != nil {
			b.Fatal(err)
		}
		if err := <-served; err != nil {
			b.Fatal(err)
		}
		sink.Close()
		j.Close()
		d.Close()
		b.StopTimer()
		os.RemoveAll(dst)
		b.StartTimer()
	}
	b.StopTimer()
	return cpuTime() - cpu0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkTransferPlain(b *testing.B) { benchTransfer(b, Options{}, Options{}) }

func BenchmarkTransferPlainNoWriteBehind(b *testing.B) {
	writeBehind = false
	defer func() { writeBehind = true }()
	benchTransfer(b, Options{}, Options{})
}

// BenchmarkTransferPlainBuffered is the engine without direct I/O: both
// sides through the page cache.
func BenchmarkTransferPlainBuffered(b *testing.B) {
	useDirect = false
	defer func() { useDirect = true }()
	benchTransfer(b, Options{}, Options{})
}

func BenchmarkTransferPlain1Stream(b *testing.B) { benchTransfer(b, Options{}, Options{Streams: 1}) }

func BenchmarkTransferLZ4(b *testing.B) {
	benchTransfer(b, Options{}, Options{Compressor: "lz4"})
}

func BenchmarkTransferTLS(b *testing.B) {
	c := makeCerts(b)
	benchTransfer(b, Options{TLS: TLS{Mode: TLSVerifyCA, Cert: c.joinerCert, Key: c.joinerKey, CA: c.ca}},
		Options{TLS: TLS{Mode: TLSVerifyCA, Cert: c.donorCert, Key: c.donorKey, CA: c.ca}})
}

func BenchmarkTransferTLSLZ4(b *testing.B) {
	c := makeCerts(b)
	benchTransfer(b, Options{TLS: TLS{Mode: TLSVerifyCA, Cert: c.joinerCert, Key: c.joinerKey, CA: c.ca}},
		Options{Compressor: "lz4", TLS: TLS{Mode: TLSVerifyCA, Cert: c.donorCert, Key: c.donorKey, CA: c.ca}})
}

// BenchmarkCopyReference is `cp -r` plus sync of the same tree: the
// physical limit the issue measures against.
func BenchmarkCopyReference(b *testing.B) {
	src := benchTree(b)
	b.SetBytes(benchSize)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst, _ := os.MkdirTemp("/var/tmp", "gs-transfer-bench-cp-")
		b.StartTimer()
		if out, err := exec.Command("cp", "-r", src, filepath.Join(dst, "x")).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, out)
		}
		if benchSync {
			exec.Command("sync").Run()
		}
		b.StopTimer()
		os.RemoveAll(dst)
		b.StartTimer()
	}
}

var (
	manyOnce  sync.Once
	manySrc   string
	manyFiles int
)

// manyTree is the many-tables shape: GS_BENCH_FILES (default 6000) files
// of 16 KiB or less, two per table (.frm and .ibd), in 100 schemas.
func manyTree(b testing.TB) string {
	manyOnce.Do(func() {
		n := 6000
		if v := os.Getenv("GS_BENCH_FILES"); v != "" {
			fmt.Sscan(v, &n)
		}
		dir, err := os.MkdirTemp("/var/tmp", "gs-transfer-bench-many-")
		if err != nil {
			b.Fatal(err)
		}
		manySrc, manyFiles = dir, n
		data := make([]byte, 16<<10)
		for i := range data {
			data[i] = byte(i * 31)
		}
		for i := range n {
			p := filepath.Join(dir, fmt.Sprintf("tenant%03d", i%100), fmt.Sprintf("t%05d.%s", i/2, []string{"frm", "ibd"}[i%2]))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, data[:1<<10+(i%2)*15<<10], 0o640); err != nil {
				b.Fatal(err)
			}
		}
	})
	return manySrc
}

// BenchmarkTransferManyFiles moves many small files: its ns/file is the
// engine's cost per file (open, read, frame, create, write, close on both
// sides), to set beside BenchmarkCreateFiles, the disk's.
func BenchmarkTransferManyFiles(b *testing.B) {
	cpu := transferTree(b, manyTree(b), Options{}, Options{})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(manyFiles)/1e3, "µs/file")
	// On a loaded machine CPU per file (both sides) is steadier than time.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(manyFiles)/1e3, "cpu-µs/file")
}

// BenchmarkCreateFiles is the floor: creating, writing and closing the
// same files (one syncfs at the end with GS_BENCH_SYNC=1), one goroutine.
func BenchmarkCreateFiles(b *testing.B) {
	src := manyTree(b)
	type ent struct {
		rel  string
		data []byte
	}
	var ents []ent
	filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			data, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(src, p)
			ents = append(ents, ent{rel, data})
		}
		return nil
	})
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst, _ := os.MkdirTemp("/var/tmp", "gs-transfer-bench-create-")
		b.StartTimer()
		for _, e := range ents {
			p := filepath.Join(dst, e.rel)
			if err := os.WriteFile(p, e.data, 0o640); err != nil {
				os.MkdirAll(filepath.Dir(p), 0o750)
				if err := os.WriteFile(p, e.data, 0o640); err != nil {
					b.Fatal(err)
				}
			}
		}
		if benchSync {
			syscall.Sync()
		}
		b.StopTimer()
		os.RemoveAll(dst)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(ents))/1e3, "µs/file")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/float64(len(ents))/1e3, "cpu-µs/file")
}
