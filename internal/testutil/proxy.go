package testutil

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Verdict is what a Proxy does with a chunk of bytes.
type Verdict int

// A Proxy's tamper function returns one of these.
const (
	Forward  Verdict = iota // pass the chunk on, changed or not
	Truncate                // end the stream to the target cleanly; the sender's further bytes vanish
	Cut                     // close the connection on both sides
)

// Proxy forwards each TCP connection to a target, letting a tamper
// function see and change the bytes sent towards the target (donor to
// joiner, in the SST tests).
type Proxy struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	tamper func(conn int, off int64, b []byte) Verdict
	conns  []net.Conn
	n      atomic.Int32
}

// NewProxy listens on a loopback port; tamper may be nil (forward all).
// The test's cleanup closes it and every connection; it does not wait for
// a tamper function that sleeps (a stalled peer, in a test).
func NewProxy(t testing.TB, target string, tamper func(conn int, off int64, b []byte) Verdict) *Proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Must(t, err)
	p := &Proxy{ln: ln, target: target, tamper: tamper}
	go p.loop()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

// Addr is where to connect, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetTarget changes where new connections go.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
}

// SetTamper changes the tamper function of the chunks read from now on.
func (p *Proxy) SetTamper(f func(conn int, off int64, b []byte) Verdict) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tamper = f
}

func (p *Proxy) loop() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target := p.target
		p.mu.Unlock()
		u, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		id := int(p.n.Add(1))
		go func() { io.Copy(c, u); c.Close() }()
		go p.forward(id, c, u.(*net.TCPConn))
	}
}

func (p *Proxy) forward(id int, c net.Conn, u *net.TCPConn) {
	buf := make([]byte, 32<<10)
	var off int64
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			tamper := p.tamper
			p.mu.Unlock()
			v := Forward
			if tamper != nil {
				v = tamper(id, off, buf[:n])
			}
			switch v {
			case Truncate:
				u.CloseWrite()
				io.Copy(io.Discard, c)
				return
			case Cut:
				c.Close()
				u.Close()
				return
			}
			off += int64(n)
			if _, err := u.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			u.CloseWrite()
			return
		}
	}
}
