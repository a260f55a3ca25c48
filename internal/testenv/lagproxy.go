package testenv

import (
	"net"
	"sync"
	"testing"
	"time"
)

// LagProxy forwards connections to target, delaying the bytes of each
// direction by lag; when either side ends, bytes still held are dropped (a
// host that dies takes what is in flight from it with it). It stops at the
// end of the test.
func LagProxy(t testing.TB, target string, lag time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("lag proxy: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			go lagCopy(c, s, lag)
			go lagCopy(s, c, lag)
		}
	}()
	return ln.Addr().String()
}

// lagCopy copies src to dst, each chunk lag after it was read, until either
// side fails; then it closes both, dropping what it still holds.
func lagCopy(dst, src net.Conn, lag time.Duration) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	ch := make(chan chunk, 1<<14)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{buf[:n], time.Now().Add(lag)}
			}
			if err != nil {
				return
			}
		}
	}()
	defer dst.Close()
	defer src.Close()
	for {
		select {
		case c := <-ch:
			select {
			case <-time.After(time.Until(c.at)):
			case <-done:
				return // the source died: what it sent last dies with it
			}
			if _, err := dst.Write(c.b); err != nil {
				return
			}
		case <-done:
			return
		}
	}
}
