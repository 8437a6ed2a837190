package chat_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/wire"
)

// TestMediaForwardOutlivesSweep: media sent to bob twice grants it once,
// by the newer message; sweeping the older message leaves bob the grant.
func TestMediaForwardOutlivesSweep(t *testing.T) {
	st := openStore(t)
	svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(&recorder{}), chat.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New(), Media: mediaPolicy{},
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	defer svc.Close(context.Background())
	ctx := context.Background()
	var ids []int64
	for _, cmid := range []string{"old", "forward"} {
		ack, err := svc.Send(ctx, chat.Sender{User: "alice"}, wire.Send{CMID: cmid, To: "bob", Type: "image", Media: "m-ok"})
		if err != nil {
			t.Fatal(err)
		}
		id, _ := strconv.ParseInt(ack.ID, 10, 64)
		ids = append(ids, id)
	}
	if sw, err := st.SweepMessages(ctx, ids[1], 0); err != nil || sw.Messages != 1 {
		t.Fatalf("sweep of the old message: %+v, %v", sw, err)
	}
	if grants, _ := st.MediaGrants(ctx, "m-ok"); len(grants) != 1 || grants[0] != "u:bob" {
		t.Fatalf("grants after the old message went: %q", grants)
	}
}
