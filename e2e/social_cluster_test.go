package e2e

import (
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestClusterSocialSharedPebble: contacts and blocks across three nodes
// (one shared store, the bus over Redis): contact events reach devices
// on other nodes, a block made on one node refuses the blocked user's
// very next send made on another and is told to the blocker's devices
// wherever they are, and a group message fanned out on another node is
// marked for the blocker there.
func TestClusterSocialSharedPebble(t *testing.T) {
	runClusterSocial(t, sharedPebble(t))
}

// TestClusterSocialMongo is the same over MongoDB (FerretDB), each node
// opening it as in production.
func TestClusterSocialMongo(t *testing.T) {
	runClusterSocial(t, mongoURI(devMongo(t).Addr()))
}

func runClusterSocial(t *testing.T, st any) {
	c := newCluster(t, st)
	n1, n2, n3 := c.start("n1"), c.start("n2"), c.start("n3")
	aliceTok, bobTok := account(t, n1, "alice", "phone"), account(t, n2, "bob", "phone")
	carolTok := account(t, n3, "carol", "phone")
	alicePhone := connect(t, n1.MQTT, "alice", "phone", aliceTok)
	bobPhone := connect(t, n2.MQTT, "bob", "phone", bobTok)
	bobTab := connect(t, n3.MQTT, "bob", "tab", login(t, n3, "bob", "tab"))
	connect(t, n3.MQTT, "carol", "phone", carolTok)

	if _, e := social(t, n1, "POST", "/v1/contacts", aliceTok, wire.ContactAsk{User: "bob"}, nil); e != nil {
		t.Fatalf("request on n1: %+v", e)
	}
	wait.For(t, "the request on bob's devices on n2 and n3", 10*time.Second, func() bool {
		return len(bobPhone.contactEvents()) == 1 && len(bobTab.contactEvents()) == 1
	})
	if _, e := social(t, n3, "POST", "/v1/contacts/alice/accept", bobTok, nil, nil); e != nil {
		t.Fatalf("accept on n3: %+v", e)
	}
	wait.For(t, "the acceptance on alice's device on n1", 10*time.Second, func() bool {
		evs := alicePhone.contactEvents()
		return len(evs) == 2 && evs[1].Action == wire.ContactAccepted && evs[1].User == "bob"
	})

	var g wire.Group
	if code := httpJSON(t, "POST", n1.HTTP+"/v1/groups", aliceTok, wire.GroupCreate{ID: "trio", Members: []string{"bob", "carol"}}, &g); code != 201 {
		t.Fatalf("create group: %d", code)
	}

	// bob blocks alice on n2; her next sends, on n1 over MQTT and on n3
	// over HTTP, are refused at once.
	if code, e := social(t, n2, "PUT", "/v1/blocks/alice", bobTok, nil, nil); code != 200 {
		t.Fatalf("block on n2: %d %+v", code, e)
	}
	_, werr := alicePhone.send("bob", "a1", "blocked?")
	refused(t, "alice's send on n1 after a block on n2", werr, wire.CodeBlocked)
	if _, e := social(t, n3, "POST", "/v1/messages", login(t, n3, "alice", "api"),
		wire.Send{CMID: "a2", To: "bob", Type: "text", Body: "blocked?"}, nil); e == nil || e.Code != wire.CodeBlocked {
		t.Fatalf("alice's send on n3: %+v", e)
	}
	wait.For(t, "the block on bob's device on n3", 10*time.Second, func() bool {
		evs := bobTab.blockEvents()
		return len(evs) == 1 && evs[0].User == "alice" && evs[0].Blocked
	})

	// Her group message, sent on n1, reaches bob on n2 and n3 marked.
	var ack wire.Ack
	if code := httpJSON(t, "POST", n1.HTTP+"/v1/messages", aliceTok, wire.Send{CMID: "g1", Group: "trio", Type: "text", Body: "hi all"}, &ack); code != 200 {
		t.Fatalf("group send: %d", code)
	}
	for _, d := range []*device{bobPhone, bobTab} {
		if m := d.await(wire.KindMsg, ack.ID); !m.Blocked {
			t.Errorf("%s/%s: the blocked user's group message unmarked: %+v", d.user, d.device, m)
		}
	}
}
