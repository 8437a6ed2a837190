package broker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The gate is every listener's front door (TCP, TLS, WebSocket). Before
// mochi sees a connection it
//
//   - counts it as unauthenticated, per remote address and in all, and
//     closes it at once when either count is at its cap;
//   - reads the first packet, which must be a CONNECT of at most
//     maxConnectSize bytes, within the CONNECT deadline (mochi sets read
//     deadlines from the keepalive only once CONNECT has been processed, so
//     a socket that never sends one would otherwise stay open for good);
//   - checks in its raw bytes what mochi's decoder cannot see or lets pass
//     (repeated MQTT 5 properties, Receive Maximum or Maximum Packet Size 0)
//     and what imqtt does not offer (wills), answering a refusal CONNACK
//     itself;
//   - hands mochi a gateConn that replays the CONNECT's bytes, then reads
//     the socket directly.
//
// The connection leaves the unauthenticated count once it has logged in
// (protocolHook.OnSessionEstablish) or when it ends. Once CONNECT has been
// replayed the gate holds no buffer: a gateConn is a few words around the
// conn it wraps (a pooledConn for plain TCP, which keeps idle connections
// free of read buffers).
type gate struct {
	timeout time.Duration
	refused func(limit string)
	conns   ConnCounter // connections not yet logged in
}

// maxConnectSize bounds the first packet. A CONNECT holds a client ID, a
// user name, a token or password and a few properties: well under 1 KiB.
// It is read under the deadline into a buffer that grows only as bytes
// arrive, so an idle unauthenticated connection costs at most this much.
const maxConnectSize = 16 << 10

// Refusal labels counted through Options.Refused.
const (
	refusedTimeout  = "connect_timeout" // no CONNECT within the deadline
	refusedPerIP    = "preauth_per_ip"  // too many unauthenticated connections from one address
	refusedTotal    = "preauth_total"   // too many unauthenticated connections in all
	refusedInvalid  = "connect_invalid" // first packet not a CONNECT, too large, malformed, or a protocol error
	refusedWill     = "will"            // CONNECT with a will (imqtt has none; a will skips the ACL)
	refusedRetained = "retain"          // PUBLISH with retain (imqtt keeps no retained messages)
)

func newGate(o Options) *gate {
	return &gate{timeout: o.ConnectTimeout, refused: o.Refused,
		conns: ConnCounter{MaxPerIP: o.MaxPreauthPerIP, MaxAll: o.MaxPreauth}}
}

// admit counts a new connection from addr as unauthenticated. Over a cap it
// counts the refusal and returns "" and false: close the connection at once.
func (g *gate) admit(addr net.Addr) (netip.Addr, bool) {
	key, over := g.conns.Admit(addr)
	switch over {
	case OverAll:
		g.refuse(refusedTotal)
	case OverPerIP:
		g.refuse(refusedPerIP)
	}
	return key, over == Under
}

// leave takes a connection admitted from key out of the counts.
func (g *gate) leave(key netip.Addr) { g.conns.Leave(key) }

// pending is the number of connections admitted that have not yet logged in.
func (g *gate) pending() int { return g.conns.Count() }

func (g *gate) refuse(limit string) {
	if g.refused != nil {
		g.refused(limit)
	}
}

// serve runs an admitted connection: it reads and checks the first packet,
// then hands the connection to establish (mochi), and returns when the
// connection has ended. It closes conn in every case.
func (g *gate) serve(conn net.Conn, key netip.Addr, establish func(net.Conn) error) error {
	gc := &gateConn{Conn: conn, g: g, key: key}
	defer gc.release()
	_ = conn.SetDeadline(time.Now().Add(g.timeout)) // mochi's keepalive deadline replaces it after CONNECT
	raw, err := readFirstPacket(conn)
	if err != nil {
		_ = conn.Close()
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			g.refuse(refusedTimeout)
		} else if errors.Is(err, errNotConnect) || errors.Is(err, errConnectSize) {
			g.refuse(refusedInvalid)
		}
		return fmt.Errorf("read CONNECT: %w", err)
	}
	if r := checkConnect(raw); r != nil {
		g.refuse(r.limit)
		if r.code != nil {
			_, _ = conn.Write(r.connack())
		}
		_ = conn.Close()
		return fmt.Errorf("CONNECT refused: %s", r.reason)
	}
	gc.replay = raw
	return establish(gc)
}

// gateConn is the connection mochi reads: the CONNECT's bytes the gate has
// read, then the connection itself. Read is not safe for concurrent use
// (mochi has one reader per connection).
type gateConn struct {
	net.Conn
	replay   []byte // the first packet's bytes not yet read by mochi; nil once read
	g        *gate
	key      netip.Addr
	released atomic.Bool
}

func (c *gateConn) Read(p []byte) (int, error) {
	if c.replay == nil {
		return c.Conn.Read(p)
	}
	n := copy(p, c.replay)
	c.replay = c.replay[n:]
	if len(c.replay) == 0 {
		c.replay = nil // gone to the garbage collector
	}
	return n, nil
}

// release takes the connection out of the unauthenticated counts, once.
func (c *gateConn) release() {
	if c.released.CompareAndSwap(false, true) {
		c.g.leave(c.key)
	}
}

var (
	errNotConnect  = errors.New("first packet is not a CONNECT") // [MQTT-3.1.0-1]
	errConnectSize = fmt.Errorf("CONNECT larger than %d bytes", maxConnectSize)
)

// readFirstPacket reads one whole MQTT packet, which must be a CONNECT, and
// nothing more: what follows it stays in the connection for mochi.
func readFirstPacket(r io.Reader) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:1]); err != nil {
		return nil, err
	}
	if hdr[0]>>4 != packets.Connect {
		return nil, errNotConnect
	}
	n, used := 0, 1
	for shift := 0; ; shift += 7 { // the remaining length [MQTT-1.5.5]
		if used == len(hdr) {
			return nil, errConnectSize // more than 4 length bytes: malformed
		}
		if _, err := io.ReadFull(r, hdr[used:used+1]); err != nil {
			return nil, err
		}
		b := hdr[used]
		used++
		n |= int(b&0x7f) << shift
		if n > maxConnectSize {
			return nil, errConnectSize
		}
		if b&0x80 == 0 {
			break
		}
	}
	total := used + n
	raw := make([]byte, used, used+min(n, 512))
	copy(raw, hdr[:used])
	for len(raw) < total { // grow only as bytes arrive
		if len(raw) == cap(raw) {
			raw = slices.Grow(raw, min(cap(raw), total-len(raw)))
		}
		m, err := r.Read(raw[len(raw):min(cap(raw), total)])
		raw = raw[:len(raw)+m]
		if err != nil && len(raw) < total {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return raw, nil
}

// refusal is the gate's answer to a CONNECT it refuses.
type refusal struct {
	version byte          // the CONNECT's protocol version
	code    *packets.Code // the CONNACK's code; nil: close without one
	reason  string        // the CONNACK's Reason String (MQTT 5) and the error
	mps     uint32        // the client's Maximum Packet Size, 0 if none
	limit   string        // what Refused counts
}

// connack encodes the refusal's CONNACK. The Reason String is left out if
// the CONNACK would exceed the client's Maximum Packet Size [MQTT-3.1.2-24].
func (r *refusal) connack() []byte {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: r.version,
		ReasonCode: r.code.Code, Properties: packets.Properties{ReasonString: r.reason}}
	var buf bytes.Buffer
	_ = pk.ConnackEncode(&buf)
	if r.mps > 0 && uint32(buf.Len()) > r.mps {
		buf.Reset()
		pk.Properties.ReasonString = ""
		_ = pk.ConnackEncode(&buf)
	}
	return buf.Bytes()
}

var (
	codeProtocolError = packets.ErrProtocolViolation           // 0x82
	codeNoWill        = packets.ErrImplementationSpecificError // 0x83: "the CONNECT is valid but is not accepted by this Server"
	codeNoRetain      = packets.ErrRetainNotSupported          // 0x9A
	code3NotAuthed    = packets.Err3NotAuthorized              // 3.1.1 return code 5
)

// checkConnect checks a whole CONNECT packet's fixed header, variable
// header and properties (mochi decodes the payload). It returns nil if the
// CONNECT may go on to mochi.
func checkConnect(raw []byte) *refusal {
	malformed := &refusal{reason: "malformed CONNECT", limit: refusedInvalid} // [MQTT-3.1.4-1]: close, no CONNACK
	_, used, err := packets.DecodeLength(bytes.NewReader(raw[1:]))
	if err != nil {
		return malformed
	}
	b := raw[1+used:]
	if len(b) < 2 {
		return malformed
	}
	nameLen := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+nameLen+4 {
		return malformed
	}
	name, version, flags := string(b[2:2+nameLen]), b[2+nameLen], b[3+nameLen]
	if !(name == "MQTT" && (version == 4 || version == 5) || name == "MQIsdp" && version == 3) {
		return nil // mochi answers an unsupported protocol [MQTT-3.1.2-2]
	}
	b = b[2+nameLen+4:]
	r := &refusal{version: version}
	if version == 5 {
		if !checkConnectProperties(b, r) {
			return r
		}
	}
	if flags&0x04 != 0 { // Will Flag
		// imqtt offers no wills: mochi publishes a will without asking the
		// ACL hook, so a will on another user's inbox would be a forged
		// event (and, retained, one redelivered on every subscribe).
		r.limit = refusedWill
		switch {
		case version < 5:
			r.code, r.reason = &code3NotAuthed, "will messages are not supported" // no closer 3.1.1 return code (§3.2.2.3)
		case flags&0x20 != 0: // Will Retain
			r.code, r.reason = &codeNoRetain, "retained messages are not supported" // [MQTT-3.2.2-13]
		default:
			r.code, r.reason = &codeNoWill, "will messages are not supported"
		}
		return r
	}
	return nil
}

// connectProps are the properties a CONNECT may carry (MQTT 5 §3.1.2.11),
// and the size of each one's value (-1: a length-prefixed string or binary,
// -2: a string pair).
var connectProps = map[byte]int{
	packets.PropSessionExpiryInterval: 4,
	packets.PropAuthenticationMethod:  -1,
	packets.PropAuthenticationData:    -1,
	packets.PropRequestProblemInfo:    1,
	packets.PropRequestResponseInfo:   1,
	packets.PropReceiveMaximum:        2,
	packets.PropTopicAliasMaximum:     2,
	packets.PropUser:                  -2,
	packets.PropMaximumPacketSize:     4,
}

// checkConnectProperties checks an MQTT 5 CONNECT's properties, which
// start b. What mochi's decoder lets through, and the spec calls a
// Protocol Error (0x82) [MQTT-3.1.4-1]: any property but the User Property
// included more than once, Receive Maximum 0 (§3.1.2.11.3), Maximum Packet
// Size 0 (§3.1.2.11.4), Request Problem/Response Information other than 0
// or 1 (§3.1.2.11.6-7), Authentication Data without a method (§3.1.2.11.10).
// It returns false with r filled in to refuse.
func checkConnectProperties(b []byte, r *refusal) bool {
	protocolError := func(reason string) bool {
		r.code, r.reason, r.limit = &codeProtocolError, reason, refusedInvalid
		return false
	}
	n, used, err := packets.DecodeLength(bytes.NewReader(b))
	if err != nil || used+n > len(b) {
		r.reason, r.limit = "malformed CONNECT properties", refusedInvalid
		return false
	}
	p := b[used : used+n]
	var seen [64]bool
	for len(p) > 0 {
		id := p[0]
		size, ok := connectProps[id]
		if !ok {
			return protocolError(fmt.Sprintf("property %d is not allowed in CONNECT", id))
		}
		if id != packets.PropUser && seen[id] {
			return protocolError(fmt.Sprintf("property %d included more than once", id))
		}
		seen[id] = true
		v := p[1:]
		if size < 0 { // -size length-prefixed fields
			fields := -size
			size = 0
			for range fields {
				if len(v) < size+2 {
					size = -1
					break
				}
				size += 2 + int(binary.BigEndian.Uint16(v[size:]))
			}
		}
		if size < 0 || len(v) < size {
			r.reason, r.limit = "malformed CONNECT properties", refusedInvalid
			return false
		}
		switch id {
		case packets.PropReceiveMaximum:
			if binary.BigEndian.Uint16(v) == 0 {
				return protocolError("Receive Maximum is 0")
			}
		case packets.PropMaximumPacketSize:
			if r.mps = binary.BigEndian.Uint32(v); r.mps == 0 {
				return protocolError("Maximum Packet Size is 0")
			}
		case packets.PropRequestProblemInfo, packets.PropRequestResponseInfo:
			if v[0] > 1 {
				return protocolError(fmt.Sprintf("property %d is neither 0 nor 1", id))
			}
		}
		p = v[size:]
	}
	if seen[packets.PropAuthenticationData] && !seen[packets.PropAuthenticationMethod] {
		return protocolError("Authentication Data without an Authentication Method")
	}
	return true
}
