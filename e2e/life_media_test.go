package e2e

import (
	"encoding/json"
	"testing"

	"github.com/imqtt/imqtt/internal/media/mediatest"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/wire"
)

// TestLifeRecallMedia: once a message with an image, and one with a
// private (HLS) video, is recalled (over MQTT), its media, thumbnail,
// playlist, key and segments answer not_found to the recipient and to the
// sender alike.
func TestLifeRecallMedia(t *testing.T) {
	mediatest.FFmpeg(t)
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "phone")
	bobTok := account(t, s, "bob", "phone")
	alice := connect(t, s.MQTT, "alice", "phone", aliceTok)
	ok := mustOK(t)

	img := mustUpload(t, s, aliceTok, "", mediatest.PNG(t, 400, 300))
	code, video, e := uploadRaw(t, s, aliceTok, "video/mp4", mediatest.Video(t, 4, 160, 120), "?private=1")
	if code != 201 || !video.HLS {
		t.Fatalf("private upload: %d %+v %+v", code, video, e)
	}
	imgMsg := ok(alice.sendMedia("bob", "i1", "image", img.ID))
	vidMsg := ok(alice.sendMedia("bob", "v1", "video", video.ID))
	urls := []string{
		"/v1/media/" + img.ID, "/v1/media/" + img.ID + "/thumb",
		"/v1/media/" + video.ID, "/v1/media/" + video.ID + "/thumb",
		"/v1/media/" + video.ID + "/hls/index.m3u8", "/v1/media/" + video.ID + "/hls/key", "/v1/media/" + video.ID + "/hls/seg00000.ts",
	}
	for _, u := range urls {
		for who, tok := range map[string]string{"alice": aliceTok, "bob": bobTok} {
			if resp, _ := request(t, "GET", s.HTTP+u, tok, nil, nil); resp.StatusCode != 200 {
				t.Fatalf("%s before the recall, %s: %d", who, u, resp.StatusCode)
			}
		}
	}
	ok(mqttActor{alice}.recall("r1", imgMsg.ID))
	ok(mqttActor{alice}.recall("r2", vidMsg.ID))
	for _, u := range urls {
		for who, tok := range map[string]string{"alice": aliceTok, "bob": bobTok} {
			resp, body := request(t, "GET", s.HTTP+u, tok, nil, nil)
			var e wire.Error
			_ = json.Unmarshal(body, &e)
			if resp.StatusCode != 404 || e.Code != wire.CodeNotFound {
				t.Errorf("%s after the recall, %s: %d %q (%d bytes)", who, u, resp.StatusCode, e.Code, len(body))
			}
		}
	}
	// The recalled messages carry no media any more.
	for _, m := range byID(getSync(t, s, bobTok, "", 0).Items) {
		if m.Media != "" || m.Inline != nil || !m.Recalled {
			t.Errorf("bob's sync after the recall: %+v", m)
		}
	}
}
