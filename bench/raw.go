package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/gorilla/websocket"
)

// rawConn is a minimal MQTT 3.1.1 client: CONNECT, SUBSCRIBE one topic at
// QoS 1, then the caller reads (or leaves the socket idle). Thousands fit in
// one process: one socket and no goroutine unless the caller starts one.
type rawConn struct {
	net.Conn
	present bool // the CONNACK's Session Present
}

// rawDialer says how a rawConn reaches the broker. The zero value dials TCP
// from any local address with a keepalive of 900 s (no PINGREQ is sent
// unless the caller runs keepAlive).
type rawDialer struct {
	Local net.Addr // source address, or nil
	// WS, if set, is a WebSocket URL (ws://host:port/mqtt) dialed instead
	// of the TCP address, with the "mqtt" subprotocol.
	WS        string
	Keepalive time.Duration // the CONNECT keepalive, whole seconds (0: 900 s)
	// Persistent asks for a session that outlives the connection
	// (cleanSession=0, [MQTT-3.1.2-4]) instead of a clean one.
	Persistent bool
}

// dialRaw connects and subscribes, waiting for CONNACK and SUBACK. The
// password may be empty (anonymous); an empty topic subscribes to nothing
// (a persistent session resumed with its subscriptions).
func dialRaw(ctx context.Context, addr string, rd rawDialer, clientID, user, password, topic string) (*rawConn, error) {
	d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: rd.Local}
	var c net.Conn
	if rd.WS != "" {
		ws := websocket.Dialer{NetDialContext: d.DialContext, HandshakeTimeout: 30 * time.Second, Subprotocols: []string{"mqtt"},
			ReadBufferSize: 512, WriteBufferSize: 512}
		wc, resp, err := ws.DialContext(ctx, rd.WS, nil)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		c = &wsConn{Conn: wc}
	} else {
		var err error
		if c, err = d.DialContext(ctx, "tcp", addr); err != nil {
			return nil, err
		}
	}
	rc := &rawConn{Conn: c}
	keepalive := uint16(900)
	if rd.Keepalive > 0 {
		keepalive = uint16(min(rd.Keepalive/time.Second, 65535))
	}
	if err := rc.handshake(clientID, user, password, topic, keepalive, !rd.Persistent); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", clientID, err)
	}
	return rc, nil
}

func (c *rawConn) handshake(clientID, user, password, topic string, keepalive uint16, clean bool) error {
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	defer c.SetDeadline(time.Time{})
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.CleanSession, cp.Keepalive = "MQTT", 4, clean, keepalive
	cp.ClientIdentifier = clientID
	if user != "" {
		cp.UsernameFlag, cp.Username = true, user
	}
	if password != "" {
		cp.PasswordFlag, cp.Password = true, []byte(password)
	}
	if err := cp.Write(c); err != nil {
		return fmt.Errorf("send CONNECT: %w", err)
	}
	pk, err := packets.ReadPacket(c)
	if err != nil {
		return fmt.Errorf("read CONNACK: %w", err)
	}
	ca, ok := pk.(*packets.ConnackPacket)
	if !ok {
		return fmt.Errorf("expected CONNACK, got %T", pk)
	}
	if ca.ReturnCode != packets.Accepted {
		return fmt.Errorf("connection refused: %v", packets.ConnErrors[ca.ReturnCode])
	}
	c.present = ca.SessionPresent
	if topic == "" {
		return nil
	}
	sp := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sp.MessageID, sp.Topics, sp.Qoss = 1, []string{topic}, []byte{1}
	if err := sp.Write(c); err != nil {
		return fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	for {
		pk, err := packets.ReadPacket(c)
		if err != nil {
			return fmt.Errorf("read SUBACK: %w", err)
		}
		sa, ok := pk.(*packets.SubackPacket)
		if !ok {
			continue // a publish that raced the SUBACK
		}
		if len(sa.ReturnCodes) != 1 || sa.ReturnCodes[0] >= 0x80 {
			return fmt.Errorf("subscribe %s refused: %v", topic, sa.ReturnCodes)
		}
		return nil
	}
}

// readPublishes calls fn with the payload of each PUBLISH until the
// connection ends. QoS 1 deliveries are acknowledged. Reads are buffered
// from here on (the handshake reads exactly its packets, so nothing is
// left behind): ReadPacket reads a fixed header a byte at a time.
func (c *rawConn) readPublishes(fn func(payload []byte)) {
	r := bufio.NewReaderSize(c.Conn, 4<<10)
	for {
		pk, err := packets.ReadPacket(r)
		if err != nil {
			return
		}
		p, ok := pk.(*packets.PublishPacket)
		if !ok {
			continue
		}
		fn(p.Payload)
		if p.Qos == 1 {
			ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
			ack.MessageID = p.MessageID
			if err := ack.Write(c); err != nil {
				return
			}
		}
	}
}

// disconnect ends the connection with a DISCONNECT, as a client that
// means to come back does: a persistent session is kept.
func (c *rawConn) disconnect() error {
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	err := packets.NewControlPacket(packets.Disconnect).Write(c)
	return errors.Join(err, c.Close())
}

// keepAlive sends a PINGREQ every interval, the first after a random part
// of it (so that thousands of connections spread their pings), and reads
// until the PINGRESP, acknowledging nothing else (an idle connection gets
// no PUBLISH). It returns when ctx ends or the connection fails; pings
// counts the answered ones.
func (c *rawConn) keepAlive(ctx context.Context, every time.Duration, pings *atomic.Int64) {
	r := bufio.NewReaderSize(c.Conn, 64)
	t := time.NewTimer(rand.N(every))
	defer t.Stop()
	ping := packets.NewControlPacket(packets.Pingreq)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = c.SetDeadline(time.Now().Add(every))
		if err := ping.Write(c); err != nil {
			return
		}
		for {
			pk, err := packets.ReadPacket(r)
			if err != nil {
				return
			}
			if _, ok := pk.(*packets.PingrespPacket); ok {
				break
			}
		}
		_ = c.SetDeadline(time.Time{})
		pings.Add(1)
		t.Reset(every)
	}
}

// wsConn carries MQTT over a WebSocket as a net.Conn: each Write is one
// binary message, Read reads across message boundaries ([MQTT-6.0.0-1],
// [MQTT-6.0.0-2]: a packet may span messages).
type wsConn struct {
	*websocket.Conn
	r io.Reader // the message being read
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}
