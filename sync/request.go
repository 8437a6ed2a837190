package sync

import (
	"strconv"

	"github.com/imqtt/imqtt/wire"
)

// MaxEpoch bounds the epoch a request may carry: a store's epoch is 26
// characters (rand.Text); a longer one can only be garbage.
const MaxEpoch = 64

// DecodeRequest decodes a sync request from a client (the im/sync payload)
// and checks it like CheckRequest. A refusal is a bad_request or not_member
// error; one by a limit (nesting past wire.MaxDepth) also names it for
// metrics.Refused.
func DecodeRequest(data []byte) (req wire.SyncRequest, e *wire.Error, limit string) {
	if e, limit := wire.DecodeRequest("sync", data, &req); e != nil {
		return req, e, limit
	}
	return req, CheckRequest(req), ""
}

// CheckRequest checks a sync request's fields, however it arrived: a group
// must be a group ID, an epoch at most MaxEpoch bytes. Limit needs no check
// (Syncer.Limit caps it) and an unknown Compress means none.
func CheckRequest(req wire.SyncRequest) *wire.Error {
	switch {
	case req.Group != "" && !wire.ValidUser(req.Group):
		return wire.NewError(wire.CodeNotMember, "group must be the ID of a group you are a member of")
	case len(req.Epoch) > MaxEpoch:
		return wire.NewError(wire.CodeBadRequest, "epoch must be one this server gave, at most "+strconv.Itoa(MaxEpoch)+" bytes")
	}
	return nil
}
