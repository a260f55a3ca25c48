// Package faultproxy is a TCP proxy on loopback for fault injection between
// a client and a server: it can stall (stop forwarding bytes in both
// directions while keeping the connections open, as a partitioned network
// or a hung peer does), black-hole them (a stall that also holds each
// side's close, so neither end learns that the other closed: a network
// partition), cut every open connection (RST), and refuse new ones.
package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Proxy forwards connections accepted on Addr to a target address.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	cond    *sync.Cond
	stalled bool
	holed   bool // Blackhole: closes are held too
	refuse  bool
	conns   map[net.Conn]struct{}
	closed  bool

	accepted atomic.Int64
	cuts     atomic.Int64
	wg       sync.WaitGroup
}

// New listens on 127.0.0.1 on a free port and forwards to target.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's listening address, 127.0.0.1:PORT.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Accepted is the number of client connections accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Cuts is the number of connections closed by Cut.
func (p *Proxy) Cuts() int64 { return p.cuts.Load() }

// Stall stops (true) or resumes (false) forwarding on every connection,
// current and new. Bytes read while stalled are held and delivered on resume.
func (p *Proxy) Stall(on bool) {
	p.mu.Lock()
	p.stalled = on
	p.mu.Unlock()
	p.cond.Broadcast()
}

// Blackhole starts (true) or heals (false) a partition between the clients
// and the target: like Stall, no byte is forwarded either way, on current
// and new connections (a new connection's handshake hangs, as a SYN to an
// unreachable host does); in addition a close or reset by one end is not
// passed to the other until the partition heals, so each end learns of the
// partition only from its own timeouts. On heal, the bytes and closes held
// are delivered, as TCP retransmission would once the network is back.
func (p *Proxy) Blackhole(on bool) {
	p.mu.Lock()
	p.stalled = on
	p.holed = on
	p.mu.Unlock()
	p.cond.Broadcast()
}

// Refuse makes the proxy close new connections at once (true), as a server
// that is down, or accept them again (false).
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// Cut closes every open connection with a TCP reset on the client side.
func (p *Proxy) Cut() int {
	p.mu.Lock()
	n := 0
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
		delete(p.conns, c)
		n++
	}
	p.mu.Unlock()
	p.cond.Broadcast()
	p.cuts.Add(int64(n))
	return n / 2
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.stalled = false
	p.holed = false
	p.mu.Unlock()
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse || p.closed
		p.mu.Unlock()
		if refuse {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
			continue
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client) || !p.track(server) {
		client.Close()
		server.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(server, client) }()
	go func() { defer wg.Done(); p.pipe(client, server) }()
	wg.Wait()
}

// pipe copies src to dst, holding the bytes while the proxy is stalled.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.untrack(dst)
	defer p.untrack(src)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.stalled && !p.closed && p.isOpen(src) {
				p.cond.Wait()
			}
			open := p.isOpen(src) && p.isOpen(dst)
			p.mu.Unlock()
			if !open {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			p.mu.Lock()
			for p.holed && !p.closed && p.isOpen(src) {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if !errors.Is(err, io.EOF) {
				return
			}
			// Half-close: pass the FIN on.
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

// isOpen reports whether c is still tracked; p.mu is held.
func (p *Proxy) isOpen(c net.Conn) bool {
	_, ok := p.conns[c]
	return ok
}
