package main

import (
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/internal/push/pushtest"
	"github.com/imqtt/imqtt/internal/push/webhook"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestE2ECLIPush: `imqtt push register` makes the device's registration,
// a message to the user while it is away is pushed to it, `imqtt push`
// lists it, `imqtt push unregister` removes it; refusals exit 1.
func TestE2ECLIPush(t *testing.T) {
	sink := pushtest.NewWebhook(t, "cli-secret")
	hook, err := webhook.New(webhook.Options{URL: sink.URL, Secret: []byte("cli-secret")})
	if err != nil {
		t.Fatal(err)
	}
	s := testserver.Start(t, func(c *daemon.Config) { c.Push.Pushers = []push.Pusher{hook} })
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	for _, u := range []*user{alice, bob} {
		u.ok("register", u.name, "--password", "pw-"+u.name)
		u.ok("login", u.name, "--password", "pw-"+u.name)
	}
	var d wire.PushDevice
	mustJSON(t, bob.ok("push", "register", "--provider", "webhook", "--token", "bob-cli"), &d)
	if d.Provider != "webhook" || d.Token != "bob-cli" {
		t.Fatalf("registered %+v", d)
	}
	var ds wire.PushDevices
	mustJSON(t, bob.ok("push"), &ds)
	if len(ds.Devices) != 1 {
		t.Fatalf("listed %+v", ds)
	}
	alice.ok("send", "--to", "bob", "are you there")
	wait.For(t, "bob's device pushed", 5*time.Second, func() bool { return len(sink.Pushes()) == 1 })
	if code, _, _ := runIn(t, bob.env, "push", "register", "--provider", "apns", "--token", "feed"); code != exitFailure {
		t.Fatalf("a provider the server lacks: exit %d", code)
	}
	if code, _, _ := runIn(t, bob.env, "push", "register", "--provider", "webhook"); code != exitUsage {
		t.Fatalf("no token: exit %d", code)
	}
	bob.ok("push", "unregister")
	mustJSON(t, bob.ok("push"), &ds)
	if len(ds.Devices) != 0 {
		t.Fatalf("after unregister: %+v", ds)
	}
	if code, _, _ := runIn(t, bob.env, "push", "unregister"); code != exitFailure {
		t.Fatalf("unregister with none: exit %d", code)
	}
}
