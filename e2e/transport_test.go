package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/wire"
)

// dialWith connects a paho client to any broker URL (ws://, tls://) and
// subscribes to its inbox, returning the client and a channel of inbox payloads.
func dialWith(t *testing.T, url, user, dev, secret string, tlsConfig *tls.Config) (paho.Client, chan []byte) {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(user + "/" + dev).SetUsername(user).
		SetPassword(secret).SetAutoReconnect(false).SetTLSConfig(tlsConfig)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	got := make(chan []byte, 16)
	if tok := c.Subscribe(wire.InboxTopic(user), 1, func(_ paho.Client, m paho.Message) { got <- m.Payload() }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return c, got
}

func expectMsg(t *testing.T, got chan []byte, body string) {
	t.Helper()
	select {
	case raw := <-got:
		var m wire.Msg
		mustUnmarshal(t, raw, &m)
		if m.Body != body {
			t.Fatalf("got %+v, want body %q", m, body)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no message %q", body)
	}
}

// TestWebSocketAndTLS: MQTT over WebSocket on the HTTP port at /mqtt, and
// MQTT over TLS when a certificate is given, carry the same chat.
func TestWebSocketAndTLS(t *testing.T) {
	certFile, keyFile := selfSigned(t)
	s := testserver.Start(t, func(c *daemon.Config) {
		c.TLSCert, c.TLSKey, c.TLSMQTTAddr = certFile, keyFile, "127.0.0.1:0"
	})
	account(t, s, "alice", "x")
	account(t, s, "bob", "x")
	_, bobWS := dialWith(t, s.WS, "bob", "web", "secret-bob", nil)
	alice, _ := dialWith(t, "tls://"+s.Broker().TLSAddr(), "alice", "secure", "secret-alice", &tls.Config{InsecureSkipVerify: true})
	payload := []byte(`{"cmid":"w1","to":"bob","type":"text","body":"over tls to ws"}`)
	if tok := alice.Publish(wire.TopicSend, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	expectMsg(t, bobWS, "over tls to ws")
}

// TestServerKeepalive: a client asking for keepalive 0 gets the server's, so
// a dead connection is reaped.
func TestServerKeepalive(t *testing.T) {
	s := testserver.Start(t)
	tok := account(t, s, "alice", "idle")
	opts := paho.NewClientOptions().AddBroker("tcp://" + s.MQTT).SetClientID("alice/idle").SetUsername("alice").
		SetPassword(tok).SetKeepAlive(0).SetAutoReconnect(false)
	c := paho.NewClient(opts)
	if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatal(tk.Error())
	}
	defer c.Disconnect(0)
	cl, ok := s.Broker().Server().Clients.Get("alice/idle")
	if !ok {
		t.Fatal("client not found")
	}
	if cl.State.Keepalive != 60 || !cl.State.ServerKeepalive {
		t.Fatalf("keepalive %d (server set: %v), want 60", cl.State.Keepalive, cl.State.ServerKeepalive)
	}
}

// selfSigned writes a throwaway certificate for 127.0.0.1.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imqtt test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
