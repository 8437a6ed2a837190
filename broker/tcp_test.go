package broker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/internal/wait"
)

// flakyListener fails its first Accepts with EMFILE, as a process out of file
// descriptors would, then accepts normally.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptSurvivesEMFILE: mochi's own TCP listener returns for good on an
// Accept error; ours waits and goes on accepting.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	l := newTCPListener("t", "127.0.0.1:0", nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := l.Init(nil); err != nil {
		t.Fatal(err)
	}
	flaky := &flakyListener{Listener: l.ln}
	flaky.failures.Store(3)
	l.ln = flaky
	got := make(chan net.Conn, 1)
	go l.Serve(func(_ string, c net.Conn) error { got <- c; return nil })
	defer l.Close(func(string) {})

	c, err := net.Dial("tcp", l.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case sc := <-got:
		sc.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("connection never established after EMFILE")
	}
	if flaky.failures.Load() >= 0 {
		t.Fatalf("the injected failures were not all hit")
	}
}

// TestStopAccepting: after stopAccepting the port refuses new connections
// and Serve returns.
func TestStopAccepting(t *testing.T) {
	l := newTCPListener("t", "127.0.0.1:0", nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := l.Init(nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { l.Serve(func(string, net.Conn) error { return nil }); close(done) }()
	addr := l.Address()
	l.stopAccepting()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("still accepting")
	}
}

// emptyReads counts c's reads that found the socket empty: after one, a
// Read waits on the poller for the peer.
func emptyReads(c *pooledConn) *atomic.Int64 {
	var n atomic.Int64
	read := c.readFunc
	c.readFunc = func(fd uintptr) bool {
		done := read(fd)
		if !done {
			n.Add(1)
		}
		return done
	}
	return &n
}

// pooledPair is a connection accepted by a tcpListener (what mochi reads)
// and the client's end of it.
func pooledPair(t testing.TB) (server *pooledConn, client net.Conn) {
	t.Helper()
	l := newTCPListener("t", "127.0.0.1:0", nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := l.Init(nil); err != nil {
		t.Fatal(err)
	}
	got := make(chan net.Conn, 1)
	go l.Serve(func(_ string, c net.Conn) error { got <- c; return nil })
	t.Cleanup(func() { l.Close(func(string) {}) })
	client, err := net.Dial("tcp", l.Address())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	select {
	case c := <-got:
		t.Cleanup(func() { c.Close() })
		pc, ok := c.(*pooledConn)
		if !ok {
			t.Fatalf("the listener handed mochi a %T, not a *pooledConn", c)
		}
		return pc, client
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
	}
	return nil, nil
}

// TestPooledConnStream: whatever the sizes of the writes and of the reads
// (through a bufio.Reader as small as mochi's now is, reads larger than the
// pooled buffer, single bytes), the bytes come out as they went in.
func TestPooledConnStream(t *testing.T) {
	server, client := pooledPair(t)
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	go func() {
		for rest := want; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(5000))
			if _, err := client.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
	}()
	br := bufio.NewReaderSize(server, 16)
	got := make([]byte, 0, len(want))
	rr := rand.New(rand.NewPCG(3, 4))
	for len(got) < len(want) {
		switch k := rr.IntN(3); {
		case k == 0:
			b, err := br.ReadByte()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b)
		default:
			n := min(len(want)-len(got), 1+rr.IntN(3*tcpReadSize))
			p := make([]byte, n)
			if _, err := io.ReadFull(br, p); err != nil {
				t.Fatal(err)
			}
			got = append(got, p...)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the bytes read differ from the bytes written")
	}
}

// TestPooledConnIdleHoldsNoBuffer: once the reader has taken every byte
// that arrived, and while it waits for more, the connection holds no
// buffer; a buffer is held only while bytes wait in it.
func TestPooledConnIdleHoldsNoBuffer(t *testing.T) {
	server, client := pooledPair(t)
	if _, err := client.Write([]byte("hello, world")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 5)
	if _, err := io.ReadFull(server, p); err != nil {
		t.Fatal(err)
	}
	if server.buf == nil {
		t.Fatal("7 bytes wait, but no buffer holds them")
	}
	rest := make([]byte, 7)
	if _, err := io.ReadFull(server, rest); err != nil || string(p)+string(rest) != "hello, world" {
		t.Fatalf("read %q%q, %v", p, rest, err)
	}
	if server.buf != nil {
		t.Fatal("every byte was read, but the connection still holds a buffer")
	}
	empty := emptyReads(server)
	read := make(chan error, 1)
	go func() { _, err := server.Read(p); read <- err }()
	wait.For(t, "the reader to wait on the socket", 5*time.Second, func() bool { return empty.Load() > 0 })
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil || p[0] != 'x' || server.buf != nil {
		t.Fatalf("read %q, %v; buffer held: %v", p[:1], err, server.buf != nil)
	}
}

// TestPooledConnErrors: a Read waiting on an idle connection ends as
// net.Conn's does: at the read deadline (mochi's keepalive) with a timeout,
// when the connection is closed with net.ErrClosed, and when the peer
// closes with io.EOF once the bytes it sent are read.
func TestPooledConnErrors(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		server, _ := pooledPair(t)
		_ = server.SetDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := server.Read(make([]byte, 16))
		var ne net.Error
		var oe *net.OpError
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() || !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("got %v, want a read timeout", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		server, _ := pooledPair(t)
		empty := emptyReads(server)
		read := make(chan error, 1)
		go func() { _, err := server.Read(make([]byte, 16)); read <- err }()
		wait.For(t, "the reader to wait on the socket", 5*time.Second, func() bool { return empty.Load() > 0 })
		server.Close()
		if err := <-read; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("got %v, want net.ErrClosed", err)
		}
	})
	t.Run("eof", func(t *testing.T) {
		server, client := pooledPair(t)
		_, _ = client.Write([]byte("bye"))
		client.Close()
		got, err := io.ReadAll(server)
		if err != nil || string(got) != "bye" || server.buf != nil {
			t.Fatalf("read %q, %v", got, err)
		}
		if _, err := server.Read(make([]byte, 16)); err != io.EOF {
			t.Fatalf("got %v, want io.EOF", err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		server, client := pooledPair(t)
		_ = client.(*net.TCPConn).SetLinger(0) // close sends RST
		client.Close()
		_, err := server.Read(make([]byte, 16))
		var oe *net.OpError
		if !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("got %v, want a read error wrapping ECONNRESET", err)
		}
	})
}

// TestMochiReadsThroughPooledConn: with the default options mochi keeps
// only a 16-byte read buffer per connection and reads TCP served on its
// goroutines (TLS; plain TCP with GoroutineIO) through a pooledConn;
// packets small and large, many in one write or one split over many reads,
// arrive whole and in order.
func TestMochiReadsThroughPooledConn(t *testing.T) {
	b := startBrokerWith(t, Options{MQTTAddr: "127.0.0.1:0", GoroutineIO: true})
	if n := b.srv.Options.ClientNetReadBufferSize; n != 16 {
		t.Fatalf("mochi reads through a %d-byte buffer each connection holds; want 16", n)
	}
	c := dialRaw(t, b.MQTTAddr(), "alice/a", 4)
	c.subscribe(0, packets.Subscription{Filter: "t/#"})
	if cl, ok := b.srv.Clients.Get("alice/a"); !ok {
		t.Fatal("no client")
	} else if gc, ok := cl.Net.Conn.(*gateConn); !ok {
		t.Fatalf("mochi reads a %T, not the gate's", cl.Net.Conn)
	} else if _, ok := gc.Conn.(*pooledConn); !ok || gc.replay != nil {
		t.Fatalf("the gate wraps a %T; replay buffer held: %v", gc.Conn, gc.replay != nil)
	}

	var stream bytes.Buffer
	var want []string
	for i := range 100 {
		size := (i * 977) % 5000
		if i == 50 {
			size = 100 << 10
		}
		payload := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 4,
			TopicName: fmt.Sprintf("t/%d", i), Payload: payload}
		if err := pk.PublishEncode(&stream); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("t/%d %d %c", i, size, 'a'+i%26))
	}
	go func() { _, _ = c.conn.Write(stream.Bytes()) }()
	for i, w := range want {
		pk := c.next1()
		got := fmt.Sprintf("%s %d", pk.TopicName, len(pk.Payload))
		if len(pk.Payload) > 0 {
			got += fmt.Sprintf(" %c", pk.Payload[0])
		} else {
			got += fmt.Sprintf(" %c", 'a'+i%26)
		}
		if got != w {
			t.Fatalf("publish %d: got %s, want %s", i, got, w)
		}
	}
}

// TestPooledConnReadAllocs: a read that waits for the socket allocates
// nothing (a closure per wait would be an allocation per packet burst, and
// live on every idle connection's stack). Under -race sync.Pool drops a
// quarter of what is put back, hence "below one" rather than zero.
func TestPooledConnReadAllocs(t *testing.T) {
	server, client := pooledPair(t)
	p, one := make([]byte, 16), []byte{1}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := client.Write(one); err != nil {
			t.Fatal(err)
		}
		if _, err := server.Read(p); err != nil {
			t.Fatal(err)
		}
	})
	if allocs >= 1 {
		t.Fatalf("%.2f allocations per read", allocs)
	}
}

// BenchmarkReadPackets reads 120-byte MQTT packets as mochi does (a byte,
// the length, the rest) from a socket kept full by a writer: through
// mochi's old 2 KiB bufio.Reader on the *net.TCPConn, and through today's
// 16-byte one on a pooledConn.
func BenchmarkReadPackets(b *testing.B) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 4,
		TopicName: "im/u/alice/inbox", Payload: bytes.Repeat([]byte("x"), 100)}
	var one bytes.Buffer
	if err := pk.PublishEncode(&one); err != nil {
		b.Fatal(err)
	}
	burst := bytes.Repeat(one.Bytes(), 64)
	for _, c := range []struct {
		name string
		size int
		wrap func(*pooledConn) net.Conn
	}{
		{"bufio2KiB-TCPConn", 2 << 10, func(c *pooledConn) net.Conn { return c.TCPConn }},
		{"bufio16-pooledConn", 16, func(c *pooledConn) net.Conn { return c }},
	} {
		b.Run(c.name, func(b *testing.B) {
			server, client := pooledPair(b)
			go func() {
				for {
					if _, err := client.Write(burst); err != nil {
						return
					}
				}
			}()
			br := bufio.NewReaderSize(c.wrap(server), c.size)
			b.SetBytes(int64(one.Len()))
			b.ResetTimer()
			for range b.N {
				if _, err := br.ReadByte(); err != nil {
					b.Fatal(err)
				}
				n, _, err := packets.DecodeLength(br)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(br, make([]byte, n)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
