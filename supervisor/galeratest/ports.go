package galeratest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Root is where every harness on this machine keeps its clusters and port
// reservations. It is shared by concurrent test processes of several users.
const Root = "/var/tmp/gs-test"

// portLock reserves one TCP port machine-wide: an flock on
// Root/ports/<port>, held for as long as the cluster lives. The kernel drops
// the lock when the holder dies, so a crashed test leaves nothing to reclaim by
// hand; the file records the holder's PID for people reading the directory.
type portLock struct {
	port int
	f    *os.File
}

func (l *portLock) release() {
	if l.f == nil {
		return
	}
	// Unlink while still locked, so nobody can lock this inode and then
	// believe the path is theirs.
	os.Remove(l.f.Name())
	l.f.Close()
	l.f = nil
}

// portRange returns the candidates: below the kernel's ephemeral range, so an
// outgoing connection (galera opens many) never takes a port a node is about
// to listen on.
func portRange() (lo, hi int) {
	lo, hi = 10000, 32767
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	eph, err := strconv.Atoi(f[0])
	if err != nil || eph <= lo+1000 {
		return lo, hi
	}
	return lo, eph - 1
}

// reservePorts reserves n distinct free ports, with lock files in dir.
func reservePorts(dir string, n int) ([]*portLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	lo, hi := portRange()
	var locks []*portLock
	fail := func(err error) ([]*portLock, error) {
		for _, l := range locks {
			l.release()
		}
		return nil, err
	}
	for tries := 0; len(locks) < n; tries++ {
		if tries > 2000 {
			return fail(fmt.Errorf("reserve %d ports in %d-%d: gave up after %d tries", n, lo, hi, tries))
		}
		p := lo + rand.IntN(hi-lo+1)
		l, err := lockPort(dir, p)
		if err != nil {
			return fail(err)
		}
		if l == nil {
			continue
		}
		if !portFree(p) {
			l.release()
			continue
		}
		locks = append(locks, l)
	}
	return locks, nil
}

// lockPort returns nil, nil when someone else holds port p.
func lockPort(dir string, p int) (*portLock, error) {
	path := filepath.Join(dir, strconv.Itoa(p))
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open port lock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, nil
			}
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		// The previous holder may have unlinked the file between our open and
		// our flock; then the lock is on a dead inode and we start over.
		var a, b syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &a) != nil || syscall.Stat(path, &b) != nil || a.Ino != b.Ino {
			f.Close()
			continue
		}
		f.Truncate(0)
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		return &portLock{port: p, f: f}, nil
	}
}

// portFree reports whether nothing listens on, or is connected from, port p
// on loopback.
func portFree(p int) bool {
	l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// mkdirShared creates dir (and parents) world-traversable: the mysql user
// must reach node dirs below it, whatever umask the test runs with.
func mkdirShared(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for d := dir; d != "/" && strings.HasPrefix(d, Root); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		if fi.Mode().Perm()&0o055 != 0o055 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o755); err != nil {
				return fmt.Errorf("chmod %s: %w", d, err)
			}
		}
	}
	return nil
}

// ReservePorts reserves n more ports machine-wide for the cluster's own
// listeners (a load balancer in front of it), released by Close.
func (c *Cluster) ReservePorts(n int) ([]int, error) {
	locks, err := reservePorts(filepath.Join(Root, "ports"), n)
	if err != nil {
		return nil, err
	}
	c.ports = append(c.ports, locks...)
	var ports []int
	for _, l := range locks {
		ports = append(ports, l.port)
	}
	return ports, nil
}
