package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqttpk "github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// Why 10 (names): ".", ".." and other IDs that are no path segment, the
// reserved names, and a case variant of a taken ID cannot be registered.
func TestAttackNamesRegister(t *testing.T) {
	s := testserver.Start(t)
	reg := func(user string) (int, wire.Error) {
		var e wire.Error
		code := httpJSON(t, "POST", s.HTTP+"/v1/users", "", wire.Register{User: user, Password: "secret-" + user}, &e)
		return code, e
	}
	for _, bad := range []string{".", "..", ".alice", "a/b", "system", "Admin", "ROOT"} {
		if code, e := reg(bad); code != 400 || e.Code != wire.CodeBadRequest {
			t.Errorf("register %q: %d %+v, want 400 bad_request", bad, code, e)
		}
	}
	var got wire.Registered
	if code := httpJSON(t, "POST", s.HTTP+"/v1/users", "", wire.Register{User: "alice", Password: "secret-alice"}, &got); code != 201 || got.User != "alice" {
		t.Fatalf("register alice: %d %+v", code, got)
	}
	for _, dup := range []string{"Alice", "ALICE"} {
		if code, e := reg(dup); code != 409 || e.Code != wire.CodeExists {
			t.Errorf("register %q after alice: %d %+v, want 409 exists", dup, code, e)
		}
	}
}

// Why 10 (names): one account whatever the case. Login as "ALICE" is alice,
// with the display name as she registered it, and her token connects as
// alice/phone.
func TestAttackNamesLogin(t *testing.T) {
	s := testserver.Start(t)
	var reg wire.Registered
	if code := httpJSON(t, "POST", s.HTTP+"/v1/users", "", wire.Register{User: "Alice", Password: "secret-Alice"}, &reg); code != 201 {
		t.Fatalf("register Alice: %d", code)
	}
	if reg != (wire.Registered{User: "alice", Display: "Alice"}) {
		t.Fatalf("register Alice replied %+v", reg)
	}
	var sess wire.Session
	if code := httpJSON(t, "POST", s.HTTP+"/v1/sessions", "", wire.Login{User: "ALICE", Password: "secret-Alice", Device: "phone"}, &sess); code != 200 {
		t.Fatalf("login ALICE: %d", code)
	}
	if sess.User != "alice" || sess.Display != "Alice" {
		t.Fatalf("login ALICE: user %q display %q, want alice, Alice", sess.User, sess.Display)
	}
	connect(t, s.MQTT, sess.User, "phone", sess.Token)
}

// Why 10 (names): a message to "Alice" reaches alice, over HTTP and MQTT,
// and group IDs and member lists fold the same way.
func TestAttackNamesSendFolds(t *testing.T) {
	s := testserver.Start(t)
	alice := connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))
	bobTok := account(t, s, "bob", "phone")
	bob := connect(t, s.MQTT, "bob", "phone", bobTok)

	var ack wire.Ack
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", bobTok, wire.Send{CMID: "h1", To: "Alice", Type: "text", Body: "over http"}, &ack); code != 200 {
		t.Fatalf("send to Alice over HTTP: %d", code)
	}
	if _, werr := bob.send("ALICE", "m1", "over mqtt"); werr != nil {
		t.Fatalf("send to ALICE over MQTT: %+v", werr)
	}
	wait.For(t, "alice gets both", 10*time.Second, func() bool { return len(alice.msgs()) == 2 })
	for _, m := range alice.msgs() {
		if m.From != "bob" || m.To != "alice" {
			t.Errorf("alice got %+v, want from bob to alice", m)
		}
	}
	var hist wire.History
	if code := httpJSON(t, "GET", s.HTTP+"/v1/conversations/ALICE/messages", bobTok, nil, &hist); code != 200 || len(hist.Messages) != 2 {
		t.Errorf("bob's history with ALICE: %d, %d messages, want 2", code, len(hist.Messages))
	}

	var g wire.Group
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", bobTok, wire.GroupCreate{ID: "Team", Members: []string{"ALICE", "alice"}}, &g); code != 201 {
		t.Fatalf("create group Team with ALICE: %d", code)
	}
	if g.ID != "team" || g.Count != 2 {
		t.Fatalf("group Team: %+v, want id team with 2 members", g)
	}
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", bobTok, wire.GroupCreate{ID: "TEAM"}, nil); code != 409 {
		t.Errorf("create group TEAM after Team: %d, want 409", code)
	}
	bob.publish(wire.TopicSend, wire.Send{CMID: "g1", Group: "TEAM", Type: "text", Body: "to the team"})
	if ack, werr := bob.awaitReply("g1"); werr != nil || ack.Group != "team" {
		t.Fatalf("send to group TEAM: %+v %+v", ack, werr)
	}
	wait.For(t, "alice gets the group message", 10*time.Second, func() bool { return len(alice.msgs()) == 3 })
}

// Why 10 (names): "imqtt history .." became GET /v1/conversations/../messages,
// which the mux redirected to another route. Dot segments and dot-led IDs
// in a path are refused with 400, and the SDK does not send them at all.
func TestAttackNamesDotPath(t *testing.T) {
	s := testserver.Start(t)
	tok := account(t, s, "alice", "phone")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{
		"/v1/conversations/../messages",
		"/v1/conversations/%2e%2e/messages",
		"/v1/conversations/./messages",
		"/v1/conversations/.alice/messages",
		"/v1/groups/..",
		"/v1/groups/g1/members/..",
	} {
		method := "GET"
		if strings.Contains(path, "/members/") {
			method = "DELETE"
		}
		req, err := http.NewRequest(method, s.HTTP+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !bytes.Contains(raw, []byte(`"bad_request"`)) {
			t.Errorf("%s %s: %d %s, want 400 bad_request", method, path, resp.StatusCode, raw)
		}
	}

	h := &client.HTTP{Server: s.HTTP, Token: tok}
	_, err := h.History(context.Background(), "..", "", 0)
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeBadRequest {
		t.Errorf("SDK History(..): %v, want bad_request", err)
	}
}

// Why 10 (names): MQTT topics use the canonical ID, so a CONNECT as
// "Alice/phone" is refused with 0x85 and a Reason String naming the ID to
// use (3.1.1: return code 2), not taken for another account.
func TestAttackNamesMQTTCase(t *testing.T) {
	s := testserver.Start(t)
	tok := account(t, s, "alice", "phone")

	code, reason := namesConnect5(t, s.MQTT, "Alice/phone", "Alice", tok)
	if code != mqttpk.ErrClientIdentifierNotValid.Code || !strings.Contains(reason, "alice/phone") {
		t.Errorf("MQTT 5 CONNECT as Alice/phone: %#x %q, want 0x85 naming alice/phone", code, reason)
	}
	if err := namesConnect311(s.MQTT, "Alice/phone", "Alice", tok); err == nil || err.Error() != packetsErr(2).Error() {
		t.Errorf("MQTT 3.1.1 CONNECT as Alice/phone: %v, want %v", err, packetsErr(2))
	}
	if code, _ := namesConnect5(t, s.MQTT, "alice/phone", "alice", tok); code != 0 {
		t.Errorf("CONNECT as alice/phone: %#x", code)
	}
}

// namesConnect5 sends an MQTT 5 CONNECT on a raw socket and returns the
// CONNACK's reason code and Reason String.
func namesConnect5(t *testing.T, addr, clientID, user, password string) (byte, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pk := mqttpk.Packet{FixedHeader: mqttpk.FixedHeader{Type: mqttpk.Connect}, ProtocolVersion: 5,
		Connect: mqttpk.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: clientID,
			UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(password)}}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(conn)
	first, err := rd.ReadByte()
	if err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	n, err := binary.ReadUvarint(rd) // MQTT's variable byte integer is this varint
	if err != nil {
		t.Fatalf("read CONNACK length: %v", err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(rd, body); err != nil {
		t.Fatalf("read CONNACK body: %v", err)
	}
	ack := mqttpk.Packet{ProtocolVersion: 5}
	if err := ack.FixedHeader.Decode(first); err != nil || ack.FixedHeader.Type != mqttpk.Connack {
		t.Fatalf("not a CONNACK: %#x %v", first, err)
	}
	if err := ack.ConnackDecode(body); err != nil {
		t.Fatalf("decode CONNACK: %v", err)
	}
	return ack.ReasonCode, ack.Properties.ReasonString
}

// namesConnect311 connects with paho over MQTT 3.1.1 and returns its error.
func namesConnect311(addr, clientID, user, password string) error {
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetUsername(user).SetPassword(password).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetProtocolVersion(4)
	c := paho.NewClient(opts)
	tk := c.Connect()
	tk.WaitTimeout(10 * time.Second)
	if tk.Error() == nil {
		c.Disconnect(0)
	}
	return tk.Error()
}
