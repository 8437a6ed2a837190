package broker

import (
	"errors"
	"net"
	"testing"
	"time"
)

// FuzzListener feeds arbitrary bytes to the real TCP listener as one MQTT
// connection (the gate, then mochi): the server must neither panic nor hang
// — within the CONNECT deadline it answers or closes the connection — and a
// good client must still be served afterwards. The seed corpus
// (testdata/fuzz/FuzzListener) holds a valid 3.1.1 CONNECT, a valid MQTT 5
// one, and the refused ones: wills, will-retain, Receive Maximum 0, Maximum
// Packet Size 0, repeated properties, a topic alias over the maximum, a
// retained PUBLISH, a silent and a truncated connection.
func FuzzListener(f *testing.F) {
	// Long enough that a loaded machine does not time out the good client.
	const deadline = 500 * time.Millisecond
	b, _ := startGated(f, Options{ConnectTimeout: deadline})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("tcp", b.MQTTAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write(data) // the server may close before it has read everything
		_ = c.SetReadDeadline(time.Now().Add(deadline + 5*time.Second))
		n, err := c.Read(make([]byte, 64))
		if ne := net.Error(nil); n == 0 && errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%d bytes: the server neither answered nor closed the connection", len(data))
		}
		c.Close()
		good := dialRaw(t, b.MQTTAddr(), "good/1", 4) // fails the test unless CONNACK 0 comes
		good.conn.Close()
	})
}
