package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Ports for servers the helpers start are taken below the kernel's
// ephemeral range (net.ipv4.ip_local_port_range), not from it: a port
// picked there and released until the server binds it (or until a killed
// server is restarted on it) could meanwhile be handed to any outgoing
// connection or CLI process that binds port 0 — it happened with
// rabbitmqctl taking a cluster node's distribution port. Below the range
// only an explicit bind can take it.
const portFloor = 20000

var (
	portMu      sync.Mutex
	portsHanded = map[int]bool{} // handed out by this process
)

// ephemeralStart returns the first port of the kernel's ephemeral range
// (32768 when it cannot be read).
var ephemeralStart = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	if f := strings.Fields(string(b)); len(f) == 2 {
		if n, err := strconv.Atoi(f[0]); err == nil {
			return n
		}
	}
	return 32768
})

// pickPorts returns n distinct TCP ports free on 127.0.0.1 just now, below
// the ephemeral range when it leaves room there (else from the kernel, as
// port 0 does), never one this process handed out before.
func pickPorts(n int) ([]int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	low, high := portFloor, ephemeralStart()-1
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		var l net.Listener
		var err error
		if high-low >= 1000 {
			for range 200 {
				p := low + rand.IntN(high-low+1)
				if portsHanded[p] {
					continue
				}
				if l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
					break
				}
			}
		}
		if l == nil {
			if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				return nil, fmt.Errorf("pick a free port: %w", err)
			}
		}
		ls = append(ls, l)
		p := l.Addr().(*net.TCPAddr).Port
		portsHanded[p] = true
		ports = append(ports, p)
	}
	return ports, nil
}
