package chat_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// TestPushJobs: with push on, a stored message is committed with a push
// job — but not a note to oneself, nor (with PushTo) a 1:1 message to a
// user without a push registration; a group message always.
func TestPushJobs(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	if err := st.CreateUser(ctx, store.User{ID: "carol", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(&recorder{}), chat.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New(),
		Pushed: func() {}, PushTo: func(user string) bool { return user == "bob" },
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	send := func(from, to, group, cmid string) int64 {
		t.Helper()
		ack, err := svc.Send(ctx, chat.Sender{User: from, Device: "d"}, wire.Send{CMID: cmid, To: to, Group: group, Type: "text", Body: "x"})
		if err != nil {
			t.Fatalf("send %s: %v", cmid, err)
		}
		var id int64
		for _, c := range ack.ID {
			id = id*10 + int64(c-'0')
		}
		return id
	}
	toBob := send("alice", "bob", "", "1")
	send("bob", "alice", "", "2") // alice has no registration
	send("alice", "alice", "", "3")
	if _, err := svc.CreateGroup(ctx, "alice", wire.GroupCreate{ID: "g1", Members: []string{"carol"}}); err != nil {
		t.Fatal(err)
	}
	inGroup := send("alice", "", "g1", "4")
	jobs, err := st.(store.Push).ClaimPushJobs(ctx, "t", 0, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, j := range jobs {
		got = append(got, j.MsgID)
	}
	if len(got) != 2 || got[0] != toBob || got[1] != inGroup {
		t.Fatalf("push jobs %v, want [%d %d]", got, toBob, inGroup)
	}
}
