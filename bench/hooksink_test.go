package bench

import (
	"context"
	"testing"

	"github.com/imqtt/imqtt/chat"
	hook "github.com/imqtt/imqtt/internal/webhook"
	"github.com/imqtt/imqtt/internal/webhook/beforesend"
	"github.com/imqtt/imqtt/wire"
)

// TestSinkAllowsBeforeSend: the sink plays the moderation backend for
// imqttd's own before_send client: it allows, and counts, each send; a
// wrongly signed one is refused (no verdict).
func TestSinkAllowsBeforeSend(t *testing.T) {
	s := startSink(t, SinkOptions{Secret: []byte("k")})
	ask := func(secret string) (chat.Verdict, error) {
		post, err := hook.New(hook.Options{URL: s.URL(), Secret: []byte(secret)})
		if err != nil {
			t.Fatal(err)
		}
		h, err := beforesend.New(post, 1)
		if err != nil {
			t.Fatal(err)
		}
		return h.BeforeSend(context.Background(), chat.Sender{User: "a", Device: "d"}, &wire.Send{CMID: "c", To: "b", Type: "text", Body: "x"})
	}
	if v, err := ask("k"); err != nil || v.Action != chat.ActionAllow {
		t.Fatalf("verdict %+v %v", v, err)
	}
	if _, err := ask("wrong"); err == nil {
		t.Fatal("a wrongly signed before_send was answered")
	}
	if st := s.Stats(false); st.Hooks != 1 || st.BadSignature != 1 || st.Pushes != 0 {
		t.Fatalf("stats %+v", st)
	}
}
