package e2e

import (
	"testing"

	"github.com/imqtt/imqtt/internal/media/mediatest"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/wire"
)

// TestGroupAvatarMedia: a group avatar that is a media object the admin
// uploaded is readable by every member, as a message's media is, and by
// no one else; an admin cannot make the group's avatar media it may not
// read (someone else's, or none), which would hand it to the members.
func TestGroupAvatarMedia(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "phone")
	bobTok := account(t, s, "bob", "phone")
	eveTok := account(t, s, "eve", "phone")
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", aliceTok, wire.GroupCreate{ID: "g1", Name: "friends", Members: []string{"bob"}}, nil); code != 201 {
		t.Fatalf("create group: %d", code)
	}
	status := func(token, id string) int {
		resp, _ := request(t, "GET", s.HTTP+"/v1/media/"+id, token, nil, nil)
		return resp.StatusCode
	}
	mine := mustUpload(t, s, aliceTok, "", mediatest.PNG(t, 40, 40))
	eves := mustUpload(t, s, eveTok, "", mediatest.PNG(t, 30, 30))
	if code := status(bobTok, mine.ID); code != 404 {
		t.Fatalf("bob reads alice's upload before it is the avatar: %d", code)
	}

	// Someone else's media, and media that does not exist: refused as a
	// send naming them is, and the group stays as it was.
	adminRefused(t, s, aliceTok, "PATCH", "/v1/groups/g1", wire.GroupPatch{Avatar: strp(eves.ID)}, wire.CodeNotFound)
	if code := status(bobTok, eves.ID); code != 404 {
		t.Fatalf("bob reads eve's media after a refused avatar: %d", code)
	}

	var g wire.Group
	if code := httpJSON(t, "PATCH", s.HTTP+"/v1/groups/g1", aliceTok, wire.GroupPatch{Avatar: strp(mine.ID)}, &g); code != 200 || g.Avatar != mine.ID {
		t.Fatalf("set the avatar: %d %+v", code, g)
	}
	if code := status(bobTok, mine.ID); code != 200 {
		t.Fatalf("member bob reads the avatar: %d", code)
	}
	if code := status(eveTok, mine.ID); code != 404 {
		t.Fatalf("non-member eve reads the avatar: %d", code)
	}
}
