package chat_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// TestKnownUsersBounded: the cache of users known to exist keeps at most
// its bound, however many users a node sends to; a user it forgot is
// looked up again, not refused.
func TestKnownUsersBounded(t *testing.T) {
	defer chat.SetKnownMax(3)()
	ctx := context.Background()
	st := openStore(t)
	svc := newService(t, st, &recorder{})
	send := func(to string, i int) {
		t.Helper()
		if _, err := svc.Send(ctx, chat.Sender{User: "alice", Device: "d"}, wire.Send{CMID: "c" + strconv.Itoa(i), To: to, Type: "text", Body: "x"}); err != nil {
			t.Fatalf("send to %s: %v", to, err)
		}
	}
	for i := range 10 {
		u := "user" + strconv.Itoa(i)
		if err := st.CreateUser(ctx, store.User{ID: u, PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
		send(u, i)
	}
	if n := chat.KnownUsers(svc); n != 3 {
		t.Errorf("%d users cached after sends to 10, bound 3", n)
	}
	send("user0", 100) // forgotten long ago: looked up again
}
