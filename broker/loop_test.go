package broker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/internal/wait"
)

// stream is a CONNECT followed by PUBLISHes of many sizes (one of 100 KiB,
// whose length takes three bytes) and PINGREQs (a header and nothing else).
func stream(t *testing.T) ([]byte, int) {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(encodePacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: "a"}}))
	n := 1
	for i := range 60 {
		size := (i * 977) % 5000
		if i == 30 {
			size = 100 << 10
		}
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 4,
			TopicName: fmt.Sprintf("t/%d", i), Payload: bytes.Repeat([]byte{byte(i)}, size)}
		if err := pk.PublishEncode(&buf); err != nil {
			t.Fatal(err)
		}
		buf.Write([]byte{packets.Pingreq << 4, 0})
		n += 2
	}
	return buf.Bytes(), n
}

// TestLoopFraming: packets come out of the framer whole and in order
// however the bytes arrive (all in one read, one byte per read, reads of
// random sizes), each in a buffer of its own (the poller's buffer is
// overwritten after each call), and between packets no bytes are held.
func TestLoopFraming(t *testing.T) {
	all, count := stream(t)
	for _, split := range []string{"one read", "byte by byte", "random"} {
		t.Run(split, func(t *testing.T) {
			lc := &loopConn{l: &loop{maxPacket: 256 << 10}}
			var got []frame
			rng := rand.New(rand.NewPCG(1, 2))
			for rest := all; len(rest) > 0; {
				n := len(rest)
				switch split {
				case "byte by byte":
					n = 1
				case "random":
					n = min(len(rest), 1+rng.IntN(3000))
				}
				pollerBuf := bytes.Clone(rest[:n])
				fs, err := lc.frame(pollerBuf)
				if err != nil {
					t.Fatal(err)
				}
				clear(pollerBuf) // the poller reuses its buffer
				got = append(got, fs...)
				rest = rest[n:]
			}
			if len(got) != count {
				t.Fatalf("%d packets framed, want %d", len(got), count)
			}
			var joined []byte
			for i, f := range got {
				if f.fh.Remaining != len(f.raw)-f.hdr {
					t.Fatalf("packet %d: remaining %d, body %d", i, f.fh.Remaining, len(f.raw)-f.hdr)
				}
				joined = append(joined, f.raw...)
			}
			if !bytes.Equal(joined, all) {
				t.Fatal("the packets framed are not the bytes sent")
			}
			if lc.partial != nil {
				t.Fatalf("%d bytes held between packets", len(lc.partial))
			}
		})
	}
}

// TestLoopFramingRefuses: what the framer refuses before any packet is
// processed: a first packet that is not a CONNECT [MQTT-3.1.0-1], a CONNECT
// over the gate's size, a packet over MaximumPacketSize, a length of more
// than four bytes.
func TestLoopFramingRefuses(t *testing.T) {
	connect := rawConnect(4, flagClean, nil, mqttStr("a"))
	for _, c := range []struct {
		name string
		data []byte
		want error
	}{
		{"publish first", []byte{0x30, 3, 0, 1, 't'}, errNotConnect},
		{"huge connect", []byte{0x10, 0xff, 0xff, 0x01}, errConnectSize},
		{"oversize publish", append(bytes.Clone(connect), 0x30, 0x80, 0x80, 0x20), packets.ErrPacketTooLarge},
		{"five length bytes", append(bytes.Clone(connect), 0x30, 0x80, 0x80, 0x80, 0x80, 0x01), errMalformedHeader},
	} {
		lc := &loopConn{l: &loop{maxPacket: 256 << 10}}
		if _, err := lc.frame(c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// TestLoopServesSplitAndJoinedPackets: over a real socket, a CONNECT sent
// a byte per write and a hundred PUBLISHes in one write reach mochi whole
// and in order, and come back to the subscriber.
func TestLoopServesSplitAndJoinedPackets(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	conn, err := net.Dial("tcp", b.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connect := encodePacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: "alice/a",
			UsernameFlag: true, Username: []byte("alice")}})
	for _, c := range connect {
		if _, err := conn.Write([]byte{c}); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(conn)
	if pk, err := readPacket(r, 4); err != nil || pk.FixedHeader.Type != packets.Connack {
		t.Fatalf("CONNACK: %+v %v", pk, err)
	}
	if cl, ok := b.srv.Clients.Get("alice/a"); !ok {
		t.Fatal("no client")
	} else if _, ok := cl.Net.Conn.(*loopConn); !ok {
		t.Fatalf("plain TCP served by a %T, not the event loop", cl.Net.Conn)
	}
	if _, err := conn.Write(encodePacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: 4, PacketID: 1, Filters: []packets.Subscription{{Filter: "t/#"}}})); err != nil {
		t.Fatal(err)
	}
	if pk, err := readPacket(r, 4); err != nil || pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("SUBACK: %+v %v", pk, err)
	}
	var all bytes.Buffer
	for i := range 100 {
		size := (i * 977) % 5000
		if i == 50 {
			size = 100 << 10
		}
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 4,
			TopicName: fmt.Sprintf("t/%d", i), Payload: bytes.Repeat([]byte{byte('a' + i%26)}, size)}
		if err := pk.PublishEncode(&all); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _, _ = conn.Write(all.Bytes()) }()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range 100 {
		pk, err := readPacket(r, 4)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		size := (i * 977) % 5000
		if i == 50 {
			size = 100 << 10
		}
		if pk.TopicName != fmt.Sprintf("t/%d", i) || len(pk.Payload) != size {
			t.Fatalf("publish %d: got %s with %d bytes", i, pk.TopicName, len(pk.Payload))
		}
	}
}

// blockHook holds every PUBLISH to topic "block" in OnPublish until release
// is closed, as an im/send waits for its commit.
type blockHook struct {
	mqtt.HookBase
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newBlockHook() *blockHook {
	return &blockHook{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (h *blockHook) ID() string           { return "block" }
func (h *blockHook) Provides(b byte) bool { return b == mqtt.OnPublish }
func (h *blockHook) unblock()             { h.once.Do(func() { close(h.release) }) }
func (h *blockHook) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the PUBLISH never reached the hook")
	}
}

func (h *blockHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.TopicName == "block" {
		h.entered <- struct{}{}
		<-h.release
	}
	return pk, nil
}

func publishBytes(t *testing.T, ver byte, topic string, payload []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: ver, TopicName: topic, Payload: payload}
	if err := pk.PublishEncode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ping sends a PINGREQ and waits for the PINGRESP.
func (c *rawClient) ping() {
	c.t.Helper()
	if _, err := c.conn.Write([]byte{packets.Pingreq << 4, 0}); err != nil {
		c.t.Fatal(err)
	}
	if pk := c.next1(); pk.FixedHeader.Type != packets.Pingresp {
		c.t.Fatalf("want PINGRESP, got %+v", pk)
	}
}

// TestLoopBlockedHookStallsNoOne: a connection whose PUBLISH is held in a
// hook does not hold up another connection's CONNECT or PINGREQ (the
// packets run on goroutines, not on the poller that reads every
// connection), and its own packets after it wait their turn.
func TestLoopBlockedHookStallsNoOne(t *testing.T) {
	h := newBlockHook()
	b := startBroker(t, "127.0.0.1:0", h)
	defer h.unblock()
	a := dialRaw(t, b.MQTTAddr(), "alice/a", 4)
	a.subscribe(0, packets.Subscription{Filter: "after"})
	if _, err := a.conn.Write(append(publishBytes(t, 4, "block", nil), publishBytes(t, 4, "after", []byte("x"))...)); err != nil {
		t.Fatal(err)
	}
	h.waitEntered(t)
	c := dialRaw(t, b.MQTTAddr(), "carol/a", 4)
	c.ping()
	select {
	case pk := <-a.got:
		t.Fatalf("alice's next packet ran while the one before it was held: %+v", pk)
	default:
	}
	h.unblock()
	if pk := a.next1(); pk.TopicName != "after" {
		t.Fatalf("want the publish on after, got %+v", pk)
	}
}

// TestLoopOrderUnderLoad: each connection's packets are processed in the
// order it sent them while many connections send at once: every client
// gets its own publishes back in sequence.
func TestLoopOrderUnderLoad(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	const clients, each = 8, 2000
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		c := dialRaw(t, b.MQTTAddr(), fmt.Sprintf("u%d/a", i), 4)
		topic := fmt.Sprintf("o/%d", i)
		c.subscribe(0, packets.Subscription{Filter: topic})
		wg.Add(1)
		go func() {
			defer wg.Done()
			go func() {
				var buf []byte
				for n := range each {
					buf = append(buf, publishBytes(t, 4, topic, []byte(strconv.Itoa(n)))...)
					if len(buf) > 1500 || n == each-1 {
						if _, err := c.conn.Write(buf); err != nil {
							return
						}
						buf = buf[:0]
					}
				}
			}()
			for n := range each {
				select {
				case pk, ok := <-c.got:
					if !ok {
						errs <- fmt.Errorf("%s: connection ended after %d", topic, n)
						return
					}
					if string(pk.Payload) != strconv.Itoa(n) {
						errs <- fmt.Errorf("%s: publish %d arrived as %s", topic, n, pk.Payload)
						return
					}
				case <-time.After(20 * time.Second):
					errs <- fmt.Errorf("%s: only %d of %d in 20s", topic, n, each)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestLoopBacklogCutsOffFlooder: a client that keeps sending while its
// packets wait (here behind a PUBLISH held in a hook) is disconnected
// once its unprocessed bytes pass MaxReadBacklog, with DISCONNECT 0x96
// (MQTT 5), and counted; another client goes on as before.
func TestLoopBacklogCutsOffFlooder(t *testing.T) {
	h := newBlockHook()
	defer h.unblock()
	var refused refusals
	b := startBrokerWith(t, Options{MQTTAddr: "127.0.0.1:0", MaxPacketSize: 16 << 10, MaxReadBacklog: 64 << 10, Refused: refused.add}, h)
	other := dialRaw(t, b.MQTTAddr(), "carol/a", 4)
	f := dialRaw(t, b.MQTTAddr(), "mallory/a", 5)
	if _, err := f.conn.Write(publishBytes(t, 5, "block", nil)); err != nil {
		t.Fatal(err)
	}
	h.waitEntered(t)
	flood := bytes.Repeat(publishBytes(t, 5, "flood", make([]byte, 1000)), 200) // 200 KB
	go func() { _, _ = f.conn.Write(flood) }()
	var last packets.Packet
	for end := time.After(10 * time.Second); ; { // until the server closes the connection
		pk, ok := packets.Packet{}, false
		select {
		case pk, ok = <-f.got:
		case <-end:
			t.Fatal("the flooder is still connected")
		}
		if !ok {
			break
		}
		last = pk
	}
	if last.FixedHeader.Type != packets.Disconnect || last.ReasonCode != packets.ErrMessageRateTooHigh.Code {
		t.Fatalf("the flooder's last packet: %+v; want DISCONNECT 0x96", last)
	}
	if n := refused.get(refusedBacklog); n != 1 {
		t.Fatalf("%d backlog refusals counted, want 1", n)
	}
	other.ping()
	h.unblock()
	wait.For(t, "the flooder's session ended", 10*time.Second, func() bool {
		_, ok := b.srv.Clients.Get("mallory/a")
		return !ok
	})
	other.ping()
}

// TestLoopCutsOffNonReader: a subscriber that stops reading is closed
// once what the socket has not taken passes MaxWriteBacklog, instead of
// the broker keeping everything published to it.
func TestLoopCutsOffNonReader(t *testing.T) {
	var refused refusals
	b := startBrokerWith(t, Options{MQTTAddr: "127.0.0.1:0", MaxWriteBacklog: 1 << 20, Refused: refused.add})
	conn, err := net.Dial("tcp", b.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	r := bufio.NewReader(conn)
	if _, err := conn.Write(rawConnect(4, flagClean|flagUser, nil, mqttStr("bob/a"), mqttStr("bob"))); err != nil {
		t.Fatal(err)
	}
	if pk, err := readPacket(r, 4); err != nil || pk.ReasonCode != 0 {
		t.Fatalf("CONNACK: %+v %v", pk, err)
	}
	if _, err := conn.Write(encodePacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: 4, PacketID: 1, Filters: []packets.Subscription{{Filter: "im/u/bob/inbox"}}})); err != nil {
		t.Fatal(err)
	}
	if pk, err := readPacket(r, 4); err != nil || pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("SUBACK: %+v %v", pk, err)
	}
	cl, _ := b.srv.Clients.Get("bob/a")
	payload := make([]byte, 16<<10)
	sent := 0
	for !cl.Closed() && sent < 256<<20 { // bob reads nothing more
		if err := b.Publish("im/u/bob/inbox", payload); err != nil {
			t.Fatal(err)
		}
		sent += len(payload)
	}
	if !cl.Closed() {
		t.Fatalf("a subscriber that reads nothing is still connected after %d MiB published to it", sent>>20)
	}
	t.Logf("closed after %d MiB published", sent>>20)
	if n := refused.get(refusedWriteBacklog); n != 1 {
		t.Fatalf("%d write backlog refusals counted, want 1", n)
	}
}

// TestLoopKeepalive: a client silent for 1.5 times its keepalive is
// closed by the server [MQTT-3.1.2-22]; one that pings is not.
func TestLoopKeepalive(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	dial := func(id string) (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", b.MQTTAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		connect := rawConnect(4, flagClean, nil, mqttStr(id))
		connect[len(connect)-len(id)-3] = 1 // keepalive 1 s (the byte before the client ID's length)
		if _, err := conn.Write(connect); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		if pk, err := readPacket(r, 4); err != nil || pk.ReasonCode != 0 {
			t.Fatalf("CONNACK: %+v %v", pk, err)
		}
		return conn, r
	}
	silent, sr := dial("silent")
	pinger, pr := dial("pinger")
	if cl, _ := b.srv.Clients.Get("silent"); cl.State.Keepalive != 1 {
		t.Fatalf("keepalive %d, want 1", cl.State.Keepalive)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		// Well before the CONNECT deadline (10 s), which the keepalive's replaces.
		_ = silent.SetReadDeadline(time.Now().Add(6 * time.Second))
		_, err := readPacket(sr, 4)
		done <- err
	}()
	for time.Since(start) < 3*time.Second {
		if _, err := pinger.Write([]byte{packets.Pingreq << 4, 0}); err != nil {
			t.Fatalf("pinger: %v", err)
		}
		if pk, err := readPacket(pr, 4); err != nil || pk.FixedHeader.Type != packets.Pingresp {
			t.Fatalf("pinger after %v: %+v %v", time.Since(start), pk, err)
		}
		time.Sleep(300 * time.Millisecond) // the client's pace, not a wait for the server
	}
	select {
	case err := <-done:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the silent client was never closed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the silent client was never closed")
	}
}

// TestLoopIdleConnectionsHoldNoGoroutine: a thousand connected, subscribed,
// idle clients add no goroutines to the server (under mochi's own I/O they
// add two each).
func TestLoopIdleConnectionsHoldNoGoroutine(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	before := settledGoroutines()
	const conns = 1000
	for i := range conns {
		conn, err := net.Dial("tcp", b.MQTTAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		id := fmt.Sprintf("u%d/a", i)
		user, _, _ := strings.Cut(id, "/")
		msg := append(rawConnect(4, flagClean|flagUser, nil, mqttStr(id), mqttStr(user)),
			encodePacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4,
				PacketID: 1, Filters: []packets.Subscription{{Filter: "im/u/" + user + "/inbox", Qos: 1}}})...)
		if _, err := conn.Write(msg); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReaderSize(conn, 64)
		for _, want := range []byte{packets.Connack, packets.Suback} {
			if pk, err := readPacket(r, 4); err != nil || pk.FixedHeader.Type != want {
				t.Fatalf("client %d: want packet type %d, got %+v %v", i, want, pk, err)
			}
		}
	}
	after := settledGoroutines()
	t.Logf("goroutines: %d before, %d with %d idle connections", before, after, conns)
	if after-before > conns/10 {
		t.Fatalf("%d goroutines for %d idle connections", after-before, conns)
	}
}

// TestLoopAcceptSurvivesEMFILE: the loop's accept loop does not end when the
// process runs out of file descriptors (EMFILE, made real here by lowering
// the limit): it retries, and serves the connection once descriptors are
// free again.
func TestLoopAcceptSurvivesEMFILE(t *testing.T) {
	var logs lockedBuffer
	b := New(Options{MQTTAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := b.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// Fill every free descriptor below the highest one in use, so that
	// the next one is the highest, and allow only that one: the dial takes
	// it and the accept finds none.
	var held []*os.File
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	entries, _ := os.ReadDir("/proc/self/fd")
	top := 0
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			top = max(top, n)
		}
	}
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		if int(f.Fd()) > top {
			f.Close()
			break
		}
		held = append(held, f)
	}
	low := lim
	low.Cur = uint64(top) + 2
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()
	conn, err := net.Dial("tcp", b.MQTTAddr())
	if err != nil {
		restore()
		t.Fatal(err)
	}
	defer conn.Close()
	wait.For(t, "an accept failed with EMFILE", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "too many open files")
	})
	restore()
	if _, err := conn.Write(rawConnect(4, flagClean, nil, mqttStr("a"))); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if pk, err := readPacket(bufio.NewReader(conn), 4); err != nil || pk.FixedHeader.Type != packets.Connack {
		t.Fatalf("no CONNACK after EMFILE: %+v %v", pk, err)
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger and a test at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// dialWS opens a WebSocket to the broker's /mqtt handler served by srv.
func dialWS(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(url, "http")+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestLoopWebSocketFraming: over WebSocket on the loop, a CONNECT split
// over a message per byte, and a SUBSCRIBE and a hundred PUBLISHes in one
// message, reach mochi whole and in order; each packet comes back in a
// binary message of its own; a text message ends the connection
// [MQTT-6.0.0-1].
func TestLoopWebSocketFraming(t *testing.T) {
	b := startBroker(t, "")
	srv := httptest.NewServer(b.WebSocket())
	defer srv.Close()
	c := dialWS(t, srv.URL)
	connect := encodePacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: "alice/w",
			UsernameFlag: true, Username: []byte("alice")}})
	for _, x := range connect {
		if err := c.WriteMessage(websocket.BinaryMessage, []byte{x}); err != nil {
			t.Fatal(err)
		}
	}
	if pk := wsNext(t, c); pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("CONNACK %+v", pk)
	}
	if cl, ok := b.srv.Clients.Get("alice/w"); !ok {
		t.Fatal("no client")
	} else if lc, ok := cl.Net.Conn.(*loopConn); !ok || lc.ws == nil {
		t.Fatalf("WebSocket served by a %T, not the event loop", cl.Net.Conn)
	}
	all := encodePacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4,
		PacketID: 1, Filters: packets.Subscriptions{{Filter: "t/#"}}})
	for i := range 100 {
		all = append(all, publishBytes(t, 4, fmt.Sprintf("t/%d", i), bytes.Repeat([]byte{'x'}, i*50))...)
	}
	if err := c.WriteMessage(websocket.BinaryMessage, all); err != nil {
		t.Fatal(err)
	}
	if pk := wsNext(t, c); pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("want SUBACK, got %+v", pk)
	}
	for i := range 100 {
		if pk := wsNext(t, c); pk.TopicName != fmt.Sprintf("t/%d", i) || len(pk.Payload) != i*50 {
			t.Fatalf("publish %d: got %s with %d bytes", i, pk.TopicName, len(pk.Payload))
		}
	}
	// A PUBLISH of ASCII bytes is valid UTF-8 text: only the MQTT rule refuses it.
	if err := c.WriteMessage(websocket.TextMessage, publishBytes(t, 4, "t/x", []byte("y"))); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the text message to end the connection", 5*time.Second, func() bool { return b.Clients() == 0 })
}

// TestLoopIdleWebSocketsHoldNoGoroutine: idle, subscribed WebSocket
// clients add no goroutines (mochi's own I/O: two each, and net/http's
// none once the handler has returned).
func TestLoopIdleWebSocketsHoldNoGoroutine(t *testing.T) {
	b := startBroker(t, "")
	srv := httptest.NewServer(b.WebSocket())
	defer srv.Close()
	before := settledGoroutines()
	const conns = 300
	for i := range conns {
		c := dialWS(t, srv.URL)
		user := fmt.Sprintf("u%d", i)
		wsSend(t, c, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
			Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: user + "/w",
				UsernameFlag: true, Username: []byte(user)}})
		if pk := wsNext(t, c); pk.FixedHeader.Type != packets.Connack {
			t.Fatalf("CONNACK %+v", pk)
		}
		wsSend(t, c, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4,
			PacketID: 1, Filters: packets.Subscriptions{{Filter: "im/u/" + user + "/inbox"}}})
		if pk := wsNext(t, c); pk.FixedHeader.Type != packets.Suback {
			t.Fatalf("SUBACK %+v", pk)
		}
	}
	after := settledGoroutines()
	t.Logf("goroutines: %d before, %d with %d idle WebSocket connections", before, after, conns)
	if after-before > conns/10 {
		t.Fatalf("%d goroutines for %d idle WebSocket connections", after-before, conns)
	}
}

// settledGoroutines is the goroutine count once it has stopped changing:
// goroutines that have finished their work have exited.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			break
		}
		n = m
	}
	return n
}

// refuseMallory refuses a CONNECT from user mallory, as the ban hook
// does: it writes the refusal CONNACK itself and fails the CONNECT. It
// holds the refusal until held returns.
type refuseMallory struct {
	mqtt.HookBase
	srv  *mqtt.Server
	held func()
}

func (h *refuseMallory) ID() string { return "refuse-mallory" }

func (h *refuseMallory) Provides(b byte) bool { return b == mqtt.OnConnect }

func (h *refuseMallory) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if string(cl.Properties.Username) != "mallory" {
		return nil
	}
	h.held()
	_ = h.srv.SendConnack(cl, packets.Err3NotAuthorized, false, nil)
	return packets.ErrNotAuthorized
}

// TestLoopConnectionsSurviveChildProcess: a child process started while a
// connection is open (imqttd itself forks nothing, but a test, a plugin or
// a hook may) does not cut off a later connection. nbio registers a
// socket with epoll under its descriptor number, and a registration lives
// as long as any descriptor of the socket does: a descriptor inherited by
// a child kept a closed connection's registration, whose events then went
// to the next connection given that number (seen as a banned MQTT 5
// client losing its refusal CONNACK in the e2e ban test). The loop's
// descriptors are close-on-exec, as Go's own are.
func TestLoopConnectionsSurviveChildProcess(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal("sleep(1) is needed: ", err)
	}
	hook := &refuseMallory{}
	b := startBrokerWith(t, Options{MQTTAddr: "127.0.0.1:0"}, hook)
	hook.srv = b.srv
	var children []*exec.Cmd
	defer func() {
		for _, c := range children {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	hook.held = func() { // a child starts while mallory's connection is open
		c := exec.Command(sleep, "30")
		if err := c.Start(); err != nil {
			t.Error(err)
			return
		}
		children = append(children, c)
	}
	dial := func(user string) (net.Conn, *bufio.Reader, packets.Packet) {
		conn, err := net.Dial("tcp", b.MQTTAddr())
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(rawConnect(4, flagClean|flagUser, nil, mqttStr(user+"/a"), mqttStr(user))); err != nil {
			t.Fatal(err)
		}
		pk, err := readPacket(r, 4)
		if err != nil {
			t.Fatalf("%s's CONNACK (after %d children): %v", user, len(children), err)
		}
		return conn, r, pk
	}
	for i := range 20 {
		mallory, _, pk := dial("mallory")
		if pk.ReasonCode != packets.Err3NotAuthorized.Code {
			t.Fatalf("round %d: mallory's CONNACK: %+v", i, pk)
		}
		var bobs []net.Conn
		var readers []*bufio.Reader
		for range 3 { // one of them takes the number of mallory's descriptor
			conn, r, pk := dial(fmt.Sprintf("bob%d", len(bobs)))
			if pk.ReasonCode != 0 {
				t.Fatalf("round %d: bob's CONNACK: %+v", i, pk)
			}
			bobs, readers = append(bobs, conn), append(readers, r)
		}
		mallory.Close() // an event of mallory's socket
		for j, conn := range bobs {
			if _, err := conn.Write([]byte{packets.Pingreq << 4, 0}); err != nil {
				t.Fatal(err)
			}
			if pk, err := readPacket(readers[j], 4); err != nil || pk.FixedHeader.Type != packets.Pingresp {
				t.Fatalf("round %d: bob%d, connected before mallory's connection ended, was cut off: %+v %v", i, j, pk, err)
			}
			conn.Close()
		}
	}
}
