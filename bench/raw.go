package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// rawConn is a minimal MQTT 3.1.1 client: CONNECT, SUBSCRIBE one topic at
// QoS 1, then the caller reads (or leaves the socket idle). Thousands fit in
// one process: one socket and no goroutine unless the caller starts one.
type rawConn struct {
	net.Conn
}

// dialRaw connects and subscribes, waiting for CONNACK and SUBACK. The
// password may be empty (anonymous). local, if not nil, is the source address.
func dialRaw(ctx context.Context, addr string, local net.Addr, clientID, user, password, topic string) (*rawConn, error) {
	d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: local}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{c}
	if err := rc.handshake(clientID, user, password, topic); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", clientID, err)
	}
	return rc, nil
}

func (c *rawConn) handshake(clientID, user, password, topic string) error {
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	defer c.SetDeadline(time.Time{})
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.CleanSession, cp.Keepalive = "MQTT", 4, true, 900
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
