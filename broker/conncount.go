package broker

import (
	"net"
	"net/netip"
	"sync"
)

// ConnCounter counts open connections per remote address and in all, against
// a cap on each: the MQTT gate counts connections that have not logged in
// with one, and the daemon counts HTTP connections with another.
type ConnCounter struct {
	MaxPerIP, MaxAll int

	mu    sync.Mutex
	all   int
	perIP map[netip.Addr]int
}

// Over says which cap a refused connection met.
type Over int

const (
	Under     Over = iota // admitted
	OverPerIP             // the remote address's cap
	OverAll               // the cap on all addresses
)

// AddrKey is what a per-address cap counts by: an IPv4 address, or the /64
// an IPv6 address is in (one host commonly holds a whole /64).
func AddrKey(addr net.Addr) netip.Addr {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
			ip = ap.Addr()
		}
	}
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			ip = p.Addr()
		}
	}
	return ip
}

// Admit counts a new connection from addr unless a cap is met. It returns
// the key to Leave with, and Under if it was counted.
func (c *ConnCounter) Admit(addr net.Addr) (netip.Addr, Over) {
	key := AddrKey(addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.all >= c.MaxAll:
		return key, OverAll
	case c.perIP[key] >= c.MaxPerIP:
		return key, OverPerIP
	}
	if c.perIP == nil {
		c.perIP = map[netip.Addr]int{}
	}
	c.all++
	c.perIP[key]++
	return key, Under
}

// Leave takes a connection Admit counted under key out of the counts.
func (c *ConnCounter) Leave(key netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all--
	if n := c.perIP[key] - 1; n > 0 {
		c.perIP[key] = n
	} else {
		delete(c.perIP, key)
	}
}

// Count is the number of connections counted now.
func (c *ConnCounter) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all
}
