package sdk

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// faultProxy stands between MQTT clients and a server and injects the faults
// of a real network into what the server sends: a PUBLISH lost or delivered
// twice, every connection cut, or a connection gone silent (half-open: no
// packet passes either way and no side is told). It parses just enough of
// MQTT 3.1.1 to find the PUBLISH packets.
type faultProxy struct {
	t  testing.TB
	ln net.Listener

	mu      sync.Mutex
	target  string                                  // the server's host:port; it may change (restart)
	links   map[*proxyLink]struct{}                 // open connections
	drop    func(topic string, payload []byte) bool // a PUBLISH to lose
	repeat  func(topic string, payload []byte) bool // a PUBLISH to send twice
	dropped int
	doubled int
}

type proxyLink struct {
	client, server net.Conn
	silent         bool // set by stall: forward nothing, close nothing
}

func newFaultProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, ln: ln, target: target, links: map[*proxyLink]struct{}{}}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

// Addr is where clients connect.
func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

func (p *faultProxy) setTarget(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = addr
}

// setFaults installs the drop and repeat rules (nil: none).
func (p *faultProxy) setFaults(drop, repeat func(topic string, payload []byte) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop, p.repeat = drop, repeat
}

// counts returns how many PUBLISH packets were dropped and sent twice.
func (p *faultProxy) counts() (dropped, doubled int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped, p.doubled
}

// open reports how many connections are open.
func (p *faultProxy) open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// cut resets every open connection, as a failing network would.
func (p *faultProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.links {
		if tc, ok := l.client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not FIN
		}
		l.client.Close()
		l.server.Close()
	}
}

// stall makes every open connection silent: what either side sends is
// swallowed and nothing is closed toward the client. New connections work.
func (p *faultProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.links {
		l.silent = true
	}
}

func (p *faultProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target := p.target
		p.mu.Unlock()
		s, err := net.Dial("tcp", target)
		if err != nil { // the server is down: so is this connection
			c.Close()
			continue
		}
		l := &proxyLink{client: c, server: s}
		p.mu.Lock()
		p.links[l] = struct{}{}
		p.mu.Unlock()
		go p.up(l)
		go p.down(l)
	}
}

func (p *faultProxy) isSilent(l *proxyLink) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return l.silent
}

// up copies client to server, swallowing everything once silent.
func (p *faultProxy) up(l *proxyLink) {
	buf := make([]byte, 32<<10)
	for {
		n, err := l.client.Read(buf)
		if n > 0 && !p.isSilent(l) {
			if _, werr := l.server.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			break
		}
	}
	// The client is gone (or cut): drop the link.
	l.client.Close()
	l.server.Close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// down copies server to client packet by packet, applying the faults. A
// silent link keeps the client's side open when the server closes its own.
func (p *faultProxy) down(l *proxyLink) {
	r := bufio.NewReader(l.server)
	for {
		pkt, hdr, err := readPacket(r)
		if err != nil {
			if !p.isSilent(l) {
				l.client.Close()
			}
			return
		}
		if p.isSilent(l) {
			continue
		}
		times := 1
		if topic, payload, ok := publishOf(pkt, hdr); ok {
			p.mu.Lock()
			switch {
			case p.drop != nil && p.drop(topic, payload):
				p.dropped++
				times = 0
			case p.repeat != nil && p.repeat(topic, payload):
				p.doubled++
				times = 2
			}
			p.mu.Unlock()
		}
		for range times {
			if _, err := l.client.Write(pkt); err != nil {
				return
			}
		}
	}
}

// readPacket reads one MQTT control packet; hdr is the length of its fixed header.
func readPacket(r *bufio.Reader) (pkt []byte, hdr int, err error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, 0, err
	}
	head := []byte{first}
	size, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return nil, 0, errors.New("malformed remaining length")
		}
		b, err := r.ReadByte()
		if err != nil {
			return nil, 0, err
		}
		head = append(head, b)
		size += int(b&127) * mult
		if b&128 == 0 {
			break
		}
		mult *= 128
	}
	pkt = make([]byte, len(head)+size)
	copy(pkt, head)
	if _, err := io.ReadFull(r, pkt[len(head):]); err != nil {
		return nil, 0, err
	}
	return pkt, len(head), nil
}

// publishOf returns the topic and payload of an MQTT 3.1.1 PUBLISH packet.
func publishOf(pkt []byte, hdr int) (topic string, payload []byte, ok bool) {
	if pkt[0]>>4 != 3 {
		return "", nil, false
	}
	body := pkt[hdr:]
	if len(body) < 2 {
		return "", nil, false
	}
	n := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+n {
		return "", nil, false
	}
	topic, rest := string(body[2:2+n]), body[2+n:]
	if qos := (pkt[0] >> 1) & 3; qos > 0 && len(rest) >= 2 {
		rest = rest[2:] // the packet identifier
	}
	return topic, rest, true
}
