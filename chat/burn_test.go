package chat_test

import (
	"strconv"
	"sync"
	"testing"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/wire"
)

// TestExpire: the server's recall of a burnt message is stored once
// however many times (and from however many goroutines: nodes, on a
// shared store) it is asked, leaves the sender's own recall impossible and
// the message a tombstone marked expired; a message that is gone, or a
// group's, is nothing to recall and no error.
func TestExpire(t *testing.T) {
	e := newLife(t, chat.Options{})
	ack := e.send("carol", wire.Send{CMID: "s1", To: "dave", Body: "secret", TTL: 30})
	id, _ := strconv.ParseInt(ack.ID, 10, 64)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := e.svc.Expire(e.ctx, id); err != nil {
				t.Errorf("expire: %v", err)
			}
		})
	}
	wg.Wait()
	if err := e.svc.Expire(e.ctx, id); err != nil {
		t.Errorf("expire again: %v", err)
	}
	for _, user := range []string{"carol", "dave"} {
		var recalls int
		for _, it := range e.sync(user) {
			switch {
			case it.Kind == wire.KindRecall && it.ID == ack.ID:
				recalls++
				if !it.Expired || it.By != "" {
					t.Errorf("%s's recall: %+v", user, it)
				}
			case it.Kind == wire.KindMsg && it.ID == ack.ID:
				if !it.Recalled || !it.Expired || it.Body != "" || it.TTL != 30 {
					t.Errorf("%s's message: %+v", user, it)
				}
			}
		}
		if recalls != 1 {
			t.Errorf("%s's inbox holds %d recalls, want 1", user, recalls)
		}
	}
	if _, err := e.recall("carol", "r1", ack.ID); err == nil {
		t.Error("the sender recalled a burnt message again")
	}
	if err := e.svc.Expire(e.ctx, 12345); err != nil {
		t.Errorf("expire of no message: %v", err)
	}
}
