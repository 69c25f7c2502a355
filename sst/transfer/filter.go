package transfer

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// isLZ4 reports whether a compressor or decompressor command names lz4,
// e.g. "lz4", "lz4 -z", "lz4 -d -q", "/usr/bin/lz4 -1".
func isLZ4(cmd string) bool {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return false
	}
	prog := f[0]
	if i := strings.LastIndexByte(prog, '/'); i >= 0 {
		prog = prog[i+1:]
	}
	if prog != "lz4" && prog != "lz4c" {
		return false
	}
	// Plain flags only: anything else (a pipe, a file) is a real shell command.
	for _, a := range f[1:] {
		if !strings.HasPrefix(a, "-") {
			return false
		}
	}
	return true
}

// filter is an external compressor or decompressor placed on one data
// connection. It runs in its own process group so that cancelling kills
// whatever sh started, and is always waited for.
type filter struct {
	cmd    *exec.Cmd
	in     *os.File // what we write into it
	out    *os.File // what it produces
	desc   string
	waited chan struct{}
	err    error // valid once waited is closed
}

func (f *filter) waitedSignal() <-chan struct{} { return f.waited }

func startFilter(ctx context.Context, command, desc string) (*filter, error) {
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	// Our own pipes: Wait closes those of StdoutPipe, possibly before
	// the last output is read.
	inR, in, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", desc, command, err)
	}
	out, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		in.Close()
		return nil, fmt.Errorf("%s %q: %w", desc, command, err)
	}
	cmd.Stdin, cmd.Stdout = inR, outW
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		in.Close()
		out.Close()
		return nil, fmt.Errorf("start %s %q: %w", desc, command, err)
	}
	f := &filter{cmd: cmd, in: in, out: out, desc: fmt.Sprintf("%s %q", desc, command), waited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		if err != nil {
			if s := strings.TrimSpace(stderr.String()); s != "" {
				err = fmt.Errorf("%w: %s", err, s)
			}
			err = fmt.Errorf("%s: %w", f.desc, err)
		}
		f.err = err
		close(f.waited)
	}()
	return f, nil
}

// wait waits for the process to end on its own, up to d, then kills it.
func (f *filter) wait(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.waited:
	case <-t.C:
		f.kill()
		<-f.waited
	}
	return f.err
}

func (f *filter) kill() {
	if f.cmd.Process != nil {
		syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
	}
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		q := p[:min(len(p), l.n)]
		l.n -= len(q)
		l.w.Write(q)
	}
	return len(p), nil
}

// closeFiles closes our ends of the pipes.
func (f *filter) closeFiles() {
	f.in.Close()
	f.out.Close()
}
