package e2e

// Persistent sessions (issue 21) through MQTT clients nobody here wrote:
// mosquitto_sub, Python paho and MQTT.js connect as a device would with a
// persistent session (3.1.1 cleanSession=0, MQTT 5 Session Expiry > 0),
// go away, and get what they missed from the store on their return, in
// order and once, also after a kill -9 and on another node; clean sessions
// stay as they were (QoS 0 live, recovery by im/sync).

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/internal/syncbuf"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// sessionWait is how long a session test waits for anything: far more
// than a replay of a few messages takes on a loaded machine.
const sessionWait = 15 * time.Second

// sessionClient is one third-party MQTT client program, run as a device.
type sessionClient struct {
	name string
	// args is the command that connects as user/device to addr (host:port)
	// with password and subscribes to user's inbox at qos, with a clean
	// session if clean, else a persistent one.
	args func(t *testing.T, addr, user, device, password string, qos byte, clean bool) []string
	// reports: the program prints its CONNACK and when it is subscribed
	// (test/python/session.py, test/node/session.mjs); mosquitto_sub does
	// not, and the broker is asked instead.
	reports bool
}

// mosquittoSub is mosquitto_sub on MQTT 3.1.1 (-c) or, if v5, MQTT 5
// (-c -x 3600), printing each message's QoS and payload as one JSON line.
func mosquittoSub(v5 bool) sessionClient {
	name := "mosquitto_sub 3.1.1"
	if v5 {
		name = "mosquitto_sub 5"
	}
	return sessionClient{name: name, args: func(t *testing.T, addr, user, device, password string, qos byte, clean bool) []string {
		host, port := hostPort(addr)
		args := []string{requireTool(t, "mosquitto_sub"), "-h", host, "-p", port, "-i", user + "/" + device, "-u", user, "-P", password,
			"-q", fmt.Sprint(qos), "-t", wire.InboxTopic(user), "-F", `{"step":"msg","qos":%q,"payload":%p}`}
		if v5 {
			args = append(args, "-V", "mqttv5")
		} else {
			args = append(args, "-V", "mqttv311")
		}
		if !clean {
			args = append(args, "-c")
			if v5 {
				args = append(args, "-x", "3600")
			}
		}
		return args
	}}
}

// pythonPaho is Python paho 1.6 with clean_session=False (3.1.1), through
// test/python/session.py.
func pythonPaho() sessionClient {
	return sessionClient{name: "python paho 3.1.1", reports: true, args: func(t *testing.T, addr, user, device, password string, qos byte, clean bool) []string {
		python := "/usr/bin/python3" // Debian's, where python3-paho-mqtt installs
		if out, err := exec.Command(python, "-c", "import paho.mqtt").CombinedOutput(); err != nil {
			t.Fatalf("python3-paho-mqtt missing (./scripts/test.sh installs it): %v %s", err, out)
		}
		host, port := hostPort(addr)
		return []string{"env", "HOST=" + host, "PORT=" + port, "USER=" + user, "DEVICE=" + device, "PASSWORD=" + password,
			"QOS=" + fmt.Sprint(qos), "CLEAN=" + flag(clean), python, filepath.Join(repoRoot(t), "test/python/session.py")}
	}}
}

// mqttJS is MQTT.js with clean:false, through test/node/session.mjs: on
// MQTT 3.1.1, or on MQTT 5 with a Session Expiry Interval of expiry
// seconds (0: none sent, which MQTT 5 reads as a session that ends with
// the connection).
func mqttJS(v5 bool, expiry int) sessionClient {
	name, proto := "mqtt.js 3.1.1", "4"
	if v5 {
		name, proto = fmt.Sprintf("mqtt.js 5 expiry %d", expiry), "5"
	}
	return sessionClient{name: name, reports: true, args: func(t *testing.T, addr, user, device, password string, qos byte, clean bool) []string {
		node := requireTool(t, "node")
		root := repoRoot(t)
		if _, err := os.Stat(filepath.Join(root, "test/node/node_modules/mqtt")); err != nil {
			t.Fatalf("MQTT.js missing: run ./scripts/test.sh (npm ci --prefix test/node): %v", err)
		}
		return []string{"env", "URL=mqtt://" + addr, "PROTO=" + proto, "EXPIRY=" + fmt.Sprint(expiry), "USER=" + user, "DEVICE=" + device,
			"PASSWORD=" + password, "QOS=" + fmt.Sprint(qos), "CLEAN=" + flag(clean), node, filepath.Join(root, "test/node/session.mjs")}
	}}
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// sessionLine is one JSON line a client program prints.
type sessionLine struct {
	Step    string          `json:"step"` // connack, ready, msg, closed
	Present bool            `json:"present"`
	QoS     byte            `json:"qos"`
	Dup     bool            `json:"dup"`
	Payload json.RawMessage `json:"payload"`
}

// delivery is one msg event a device received, with the QoS it came at.
type delivery struct {
	wire.Msg
	QoS byte
}

// sessionProc is one run of a client program: one connection of a device.
type sessionProc struct {
	t      *testing.T
	c      sessionClient
	id     string // the MQTT client ID
	cmd    *exec.Cmd
	done   chan struct{}  // closed when its output ends
	stderr syncbuf.Buffer // written by exec's copying goroutine while a failing wait reads it

	mu    sync.Mutex
	lines []sessionLine
	raw   []string // every line, for failure messages
}

// startSession runs c as user/device against addr (password "secret-"+user).
func startSession(t *testing.T, c sessionClient, addr, user, device string, qos byte, clean bool) *sessionProc {
	t.Helper()
	args := c.args(t, addr, user, device, "secret-"+user, qos, clean)
	p := &sessionProc{t: t, c: c, id: user + "/" + device, cmd: exec.Command(args[0], args[1:]...), done: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done; _ = p.cmd.Wait() })
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l sessionLine
			err := json.Unmarshal(sc.Bytes(), &l)
			p.mu.Lock()
			p.raw = append(p.raw, sc.Text())
			if err == nil {
				p.lines = append(p.lines, l)
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// output is what the program printed, for failure messages.
func (p *sessionProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%s: stdout:\n%s\nstderr:\n%s", p.c.name, strings.Join(p.raw, "\n"), p.stderr.String())
}

func (p *sessionProc) step(name string) (sessionLine, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if l.Step == name {
			return l, true
		}
	}
	return sessionLine{}, false
}

// waitReady waits until the device is connected and subscribed: by its own
// word, or by node's broker for a program that does not say.
func (p *sessionProc) waitReady(node *testserver.Server) {
	p.t.Helper()
	if p.c.reports {
		p.waitStep("ready")
		return
	}
	if node == nil {
		p.t.Fatalf("%s reports nothing and there is no broker to ask", p.c.name)
	}
	user, _, _ := strings.Cut(p.id, "/")
	wait.ForErr(p.t, p.id+" connected and subscribed to its inbox", sessionWait, func() error {
		select {
		case <-p.done:
			p.t.Fatalf("%s ended before it was subscribed\n%s", p.id, p.output())
		default:
		}
		_, subs, ok := node.Broker().ClientDetail(p.id)
		if ok && slices.ContainsFunc(subs, func(s broker.Subscription) bool { return s.Filter == wire.InboxTopic(user) }) {
			return nil
		}
		return fmt.Errorf("connected %v, subscriptions %v\n%s", ok, subs, p.output())
	})
}

// waitStep waits for the program to print step; it fails at once if the
// program ends first.
func (p *sessionProc) waitStep(name string) sessionLine {
	p.t.Helper()
	var l sessionLine
	wait.ForErr(p.t, p.id+" to print "+name, sessionWait, func() error {
		var ok bool
		if l, ok = p.step(name); ok {
			return nil
		}
		select {
		case <-p.done:
			if l, ok = p.step(name); ok { // its last words
				return nil
			}
			p.t.Fatalf("%s ended before %s\n%s", p.id, name, p.output())
		default:
		}
		return fmt.Errorf("not yet\n%s", p.output())
	})
	return l
}

// requirePresent checks the CONNACK's session present flag, for a program
// that prints it.
func (p *sessionProc) requirePresent(want bool) {
	p.t.Helper()
	if !p.c.reports {
		return
	}
	if l := p.waitStep("connack"); l.Present != want {
		p.t.Fatalf("%s: CONNACK session present %v, want %v\n%s", p.id, l.Present, want, p.output())
	}
}

// msgs returns the msg events received so far, in order.
func (p *sessionProc) msgs() []delivery {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []delivery
	for _, l := range p.lines {
		var m wire.Msg
		if l.Step == "msg" && json.Unmarshal(l.Payload, &m) == nil && m.Kind == wire.KindMsg {
			out = append(out, delivery{Msg: m, QoS: l.QoS})
		}
	}
	return out
}

func bodiesOf(ds []delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Body
	}
	return out
}

// waitMsgs waits until the device has received exactly want (message
// bodies), in order, each at qos; it fails as soon as a message comes that
// is not the next one wanted (a repeat, a reordering, a stranger).
func (p *sessionProc) waitMsgs(want []string, qos byte) {
	p.t.Helper()
	wait.ForErr(p.t, fmt.Sprintf("%s to receive %q", p.id, want), sessionWait, func() error {
		got := p.msgs()
		if len(got) > len(want) || !slices.Equal(bodiesOf(got), want[:len(got)]) {
			p.t.Fatalf("%s received %q, want %q\n%s", p.id, bodiesOf(got), want, p.output())
		}
		for _, d := range got {
			if d.QoS != qos {
				p.t.Fatalf("%s received %q at QoS %d, want QoS %d", p.id, d.Body, d.QoS, qos)
			}
		}
		if len(got) == len(want) {
			return nil
		}
		select {
		case <-p.done:
			p.t.Fatalf("%s ended after %d of %q\n%s", p.id, len(got), want, p.output())
		default:
		}
		return fmt.Errorf("%d of %d so far\n%s", len(got), len(want), p.output())
	})
}

// stop disconnects the device cleanly (SIGTERM: each program then sends
// DISCONNECT) and waits for the program to end.
func (p *sessionProc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(sessionWait):
		p.t.Fatalf("%s did not end on SIGTERM\n%s", p.id, p.output())
	}
}

// waitGone waits until node no longer has clientID's connection.
func waitGone(t *testing.T, node *testserver.Server, clientID string) {
	t.Helper()
	wait.For(t, clientID+"'s connection closed on the broker", sessionWait, func() bool {
		_, _, ok := node.Broker().ClientDetail(clientID)
		return !ok
	})
}

// sendHTTP sends body from the holder of token to user to (or to group)
// over HTTP and returns its ack.
func sendHTTP(t *testing.T, base, token, to, group, body string) wire.Ack {
	t.Helper()
	var a wire.Ack
	cmid := strings.ReplaceAll(body, " ", "-")
	if code := httpJSON(t, "POST", base+"/v1/messages", token, wire.Send{CMID: cmid, To: to, Group: group, Type: "text", Body: body}, &a); code != 200 {
		t.Fatalf("send %q: %d", body, code)
	}
	return a
}

func sendEach(t *testing.T, base, token, to, group string, bodies []string) {
	t.Helper()
	for _, b := range bodies {
		sendHTTP(t, base, token, to, group, b)
	}
}

// runMissed is what a device with a persistent session sees, through
// client c: a message while connected comes at QoS 1; the device goes
// away; alice sends three; the device comes back the same way and gets
// exactly those three (not the one it had acknowledged), in order, once,
// at QoS 1, with session present; then live messages still come.
func runMissed(t *testing.T, c sessionClient) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "http")
	account(t, s, "bob", "x")

	d := startSession(t, c, s.MQTT, "bob", "iot", 1, false)
	d.waitReady(s)
	sendHTTP(t, s.HTTP, aliceTok, "bob", "", "before")
	d.waitMsgs([]string{"before"}, 1)
	d.stop()
	waitGone(t, s, "bob/iot")

	missed := []string{"missed 1", "missed 2", "missed 3"}
	sendEach(t, s.HTTP, aliceTok, "bob", "", missed)

	d = startSession(t, c, s.MQTT, "bob", "iot", 1, false)
	d.requirePresent(true)
	d.waitMsgs(missed, 1)
	// Live after the replay; that it comes right after the three shows
	// that nothing else was replayed before it.
	d.waitReady(s)
	sendHTTP(t, s.HTTP, aliceTok, "bob", "", "live")
	d.waitMsgs(append(missed, "live"), 1)
}

// TestSessionMosquitto311: mosquitto_sub -c -q 1 (MQTT 3.1.1,
// cleanSession=0) gets the messages it missed, once, in order, then live ones.
func TestSessionMosquitto311(t *testing.T) { runMissed(t, mosquittoSub(false)) }

// TestSessionMosquitto5: the same with mosquitto_sub -V mqttv5 -c -x 3600
// (Session Expiry Interval of an hour).
func TestSessionMosquitto5(t *testing.T) { runMissed(t, mosquittoSub(true)) }

// TestSessionPythonPaho: the same with Python paho, clean_session=False,
// which subscribes only when the CONNACK says there is no session: its
// subscription is restored by the broker.
func TestSessionPythonPaho(t *testing.T) { runMissed(t, pythonPaho()) }

// TestSessionMQTTJS: the same with MQTT.js, clean:false, which also trusts
// the session to hold its subscription.
func TestSessionMQTTJS(t *testing.T) { runMissed(t, mqttJS(false, 0)) }

// TestSessionCleanUnchanged: what persistent sessions must leave alone.
// A clean session (mosquitto_sub without -c) gets live messages at QoS 0
// and nothing of what it missed when it comes back (it recovers by
// im/sync, the SDK's path). So does an MQTT 5 connection with clean start
// 0 but no Session Expiry Interval (MQTT.js clean:false on MQTT 5): its
// session ends with the connection, and the CONNACK never says Session
// Present. A persistent session subscribed at QoS 0 gets live-only QoS 0,
// as it asked: no replay either.
func TestSessionCleanUnchanged(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "http")
	for _, c := range []struct {
		name, user string
		client     sessionClient
		qos        byte
		clean      bool
		present    bool // the second CONNACK's Session Present, for a client that says
	}{
		{"clean session", "bob", mosquittoSub(false), 1, true, false},
		{"MQTT 5 without session expiry", "dave", mqttJS(true, 0), 1, false, false},
		{"persistent session at QoS 0", "carol", mosquittoSub(false), 0, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			account(t, s, c.user, "x")
			d := startSession(t, c.client, s.MQTT, c.user, "cli", c.qos, c.clean)
			d.requirePresent(false)
			d.waitReady(s)
			sendHTTP(t, s.HTTP, aliceTok, c.user, "", c.user+" before")
			d.waitMsgs([]string{c.user + " before"}, 0)
			d.stop()
			waitGone(t, s, c.user+"/cli")
			sendEach(t, s.HTTP, aliceTok, c.user, "", numbered(c.user+" missed ", 3))

			d = startSession(t, c.client, s.MQTT, c.user, "cli", c.qos, c.clean)
			d.requirePresent(c.present)
			d.waitReady(s)
			sendHTTP(t, s.HTTP, aliceTok, c.user, "", c.user+" live")
			// The live one first and alone: nothing was replayed before it.
			d.waitMsgs([]string{c.user + " live"}, 0)
		})
	}
}

// TestSessionGroups: a persistent session replays group messages too. bob,
// in alice's group, is away while alice sends two group messages and one
// direct; when he comes back all three come, once each, at QoS 1, the
// group ones in seq order; then live ones.
func TestSessionGroups(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "http")
	account(t, s, "bob", "x")
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", aliceTok, wire.GroupCreate{ID: "g1", Name: "friends", Members: []string{"bob"}}, nil); code != 201 {
		t.Fatalf("create group: %d", code)
	}
	mosq := mosquittoSub(false)
	d := startSession(t, mosq, s.MQTT, "bob", "iot", 1, false)
	d.waitReady(s)
	sendHTTP(t, s.HTTP, aliceTok, "", "g1", "group before")
	d.waitMsgs([]string{"group before"}, 1)
	d.stop()
	waitGone(t, s, "bob/iot")

	g1 := sendHTTP(t, s.HTTP, aliceTok, "", "g1", "group 1")
	direct := sendHTTP(t, s.HTTP, aliceTok, "bob", "", "direct 1")
	g2 := sendHTTP(t, s.HTTP, aliceTok, "", "g1", "group 2")

	d = startSession(t, mosq, s.MQTT, "bob", "iot", 1, false)
	wait.ForErr(t, "bob/iot to receive the three", sessionWait, func() error {
		if n := len(d.msgs()); n < 3 {
			return fmt.Errorf("%d of 3 so far", n)
		}
		return nil
	})
	got := d.msgs()
	if len(got) != 3 {
		t.Fatalf("received %q, want the three missed\n%s", bodiesOf(got), d.output())
	}
	byID := map[string]delivery{}
	var groupOrder []uint64
	for _, m := range got {
		if _, again := byID[m.ID]; again || m.QoS != 1 {
			t.Fatalf("received %q: %+v again or not at QoS 1", bodiesOf(got), m)
		}
		byID[m.ID] = m
		if m.Group == "g1" {
			groupOrder = append(groupOrder, m.Seq)
		}
	}
	for _, a := range []wire.Ack{g1, direct, g2} {
		if _, ok := byID[a.ID]; !ok {
			t.Fatalf("missed message %s (%+v) not replayed; received %q", a.ID, a, bodiesOf(got))
		}
	}
	if !slices.Equal(groupOrder, []uint64{g1.Seq, g2.Seq}) {
		t.Fatalf("group messages came by seq %v, want %v", groupOrder, []uint64{g1.Seq, g2.Seq})
	}
	d.waitReady(s)
	sendHTTP(t, s.HTTP, aliceTok, "", "g1", "group live")
	d.waitMsgs(append(bodiesOf(got), "group live"), 1)
}

// TestSessionKill9: a persistent session survives imqttd killed -9.
// Python paho (clean_session=False) receives and acknowledges a first run
// of messages; imqttd is killed -9 and restarted on the same data
// directory, and a second run is sent to the device while it is away; it
// comes back and gets every message of the second run once, in order,
// then live ones. Before them it may get again a tail of the first run,
// whose acknowledgements were not yet written at the kill (at least once,
// as in MQTT), but never with a gap: what it gets is the first run from
// some point on, then the second run whole. The device is away at the
// kill (it disconnected, the second run was sent before the kill), or
// still connected (the kill cuts it off; the second run is sent after the
// restart): the case where its last acknowledgements may not be saved.
// (That device was away once before: a session whose first connection is
// younger than the interval of the saves is not in the store yet.)
func TestSessionKill9(t *testing.T) {
	for _, c := range []struct {
		name string
		away bool
	}{{"away at the kill", true}, {"connected at the kill", false}} {
		t.Run(c.name, func(t *testing.T) { runSessionKill9(t, c.away) })
	}
}

func runSessionKill9(t *testing.T, away bool) {
	dir := t.TempDir()
	p := startProcess(t, dir)
	base := "http://" + p.http
	for _, u := range []string{"alice", "bob"} {
		if code := httpJSON(t, "POST", base+"/v1/users", "", wire.Register{User: u, Password: "secret-" + u}, nil); code != 201 {
			t.Fatalf("register %s: %d", u, code)
		}
	}
	aliceTok := loginAt(t, base, "alice")
	py := pythonPaho()
	d := startSession(t, py, p.mqtt, "bob", "iot", 1, false)
	d.waitReady(nil)
	if !away {
		// The session is saved when its device goes away (and its changes
		// every second or so while it is connected): once away and back,
		// it is in the store whatever the kill interrupts.
		d.stop()
		d = startSession(t, py, p.mqtt, "bob", "iot", 1, false)
		d.requirePresent(true)
		d.waitReady(nil)
	}
	acked := numbered("acked ", 20)
	sendEach(t, base, aliceTok, "bob", "", acked)
	d.waitMsgs(acked, 1)
	missed := numbered("missed ", 20)
	if away {
		d.stop()
		sendEach(t, base, aliceTok, "bob", "", missed)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	if !away {
		d.waitStep("closed")
	}

	p = startProcess(t, dir)
	base = "http://" + p.http
	aliceTok = loginAt(t, base, "alice")
	if !away {
		sendEach(t, base, aliceTok, "bob", "", missed)
	}
	d = startSession(t, py, p.mqtt, "bob", "iot", 1, false)
	d.requirePresent(true)
	// again is how many of the first run came again; -1 until the first
	// message shows it.
	again := -1
	wait.ForErr(t, "bob/iot to receive the second run", sessionWait, func() error {
		got := bodiesOf(d.msgs())
		if len(got) == 0 {
			return fmt.Errorf("nothing yet")
		}
		if again < 0 {
			again = 0
			if i := slices.Index(acked, got[0]); i >= 0 {
				again = len(acked) - i
			}
		}
		want := append(slices.Clone(acked[len(acked)-again:]), missed...)
		if len(got) > len(want) || !slices.Equal(got, want[:len(got)]) {
			t.Fatalf("after the restart received %q, want the first run from some point on and then %q\n%s", got, missed, d.output())
		}
		if len(got) < len(want) {
			return fmt.Errorf("%d of %d so far", len(got), len(want))
		}
		return nil
	})
	d.waitReady(nil)
	sendHTTP(t, base, aliceTok, "bob", "", "live")
	d.waitMsgs(append(append(slices.Clone(acked[len(acked)-again:]), missed...), "live"), 1)
	t.Logf("%d of the %d messages acknowledged before the kill came again after it", again, len(acked))
}

// TestSessionNodeChange: persistent sessions in scale-out, two nodes over
// Redis and a MongoDB store (FerretDB) that each opens, as in production.
// A device (Python paho, clean_session=False) on node a goes away,
// messages are sent through node b, and it comes back on node b: it gets
// them once, in order, then live ones. Then takeovers (runTakeover).
func TestSessionNodeChange(t *testing.T) {
	c := newCluster(t, mongoURI(devMongo(t).Addr()))
	a, b := c.start("a"), c.start("b")
	aliceTok := account(t, a, "alice", "http")
	account(t, a, "bob", "x")
	py := pythonPaho()

	d := startSession(t, py, a.MQTT, "bob", "iot", 1, false)
	d.waitReady(a)
	sendHTTP(t, a.HTTP, aliceTok, "bob", "", "before")
	d.waitMsgs([]string{"before"}, 1)
	d.stop()
	waitGone(t, a, "bob/iot")
	missed := numbered("missed ", 3)
	sendEach(t, b.HTTP, aliceTok, "bob", "", missed)
	d = startSession(t, py, b.MQTT, "bob", "iot", 1, false)
	d.requirePresent(true)
	d.waitMsgs(missed, 1)
	d.waitReady(b)
	sendHTTP(t, a.HTTP, aliceTok, "bob", "", "live")
	d.waitMsgs(append(missed, "live"), 1)

	t.Run("takeover", func(t *testing.T) { runTakeover(t, a, b, aliceTok, "tab", true) })
	t.Run("takeover of a new session", func(t *testing.T) { runTakeover(t, a, b, aliceTok, "pad", false) })
}

// runTakeover: bob's device (Python paho, clean_session=False), connected
// to node a, connects again to node b while its connection to a is open.
// b takes the session over (session present, the connection to a closed),
// nothing acknowledged on a comes again (tracked by message id), and later
// messages come on b's connection only. If seasoned, the device had been
// away and back once before; if not, its session is younger than the
// interval at which sessions are saved, and only node a knows it at the
// takeover.
func runTakeover(t *testing.T, a, b *testserver.Server, aliceTok, device string, seasoned bool) {
	py := pythonPaho()
	onA := startSession(t, py, a.MQTT, "bob", device, 1, false)
	onA.waitReady(a)
	if seasoned {
		onA.stop()
		waitGone(t, a, "bob/"+device)
		onA = startSession(t, py, a.MQTT, "bob", device, 1, false)
		onA.requirePresent(true)
		onA.waitReady(a)
	}
	first := numbered(device+" first ", 3)
	sendEach(t, b.HTTP, aliceTok, "bob", "", first)
	onA.waitMsgs(first, 1)

	onB := startSession(t, py, b.MQTT, "bob", device, 1, false)
	onB.requirePresent(true)
	onA.waitStep("closed")
	onB.waitReady(b)
	then := numbered(device+" then ", 3)
	sendEach(t, a.HTTP, aliceTok, "bob", "", then)
	onB.waitMsgs(then, 1) // and none of first before them
	if got := bodiesOf(onA.msgs()); !slices.Equal(got, first) {
		t.Fatalf("the connection taken over received %q, want %q", got, first)
	}
	seen := map[string]bool{}
	for _, m := range append(onA.msgs(), onB.msgs()...) {
		if seen[m.ID] {
			t.Fatalf("message %s (%q) delivered twice in the session", m.ID, m.Body)
		}
		seen[m.ID] = true
	}
}
