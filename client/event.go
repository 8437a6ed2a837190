package client

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/imqtt/imqtt/wire"
)

// Event is one downlink event handed to Config.OnEvent: a message (Msg set)
// or an unread update (Unread set), or another kind a newer server sends
// (only Kind and Raw set).
type Event struct {
	Kind   string          // wire.KindMsg, wire.KindUnread, ...
	Ver    uint64          // the user's inbox version; 0 for unversioned events such as unread
	Msg    *wire.Msg       // for Kind msg
	Unread *wire.Unread    // for Kind unread
	Raw    json.RawMessage // the event's JSON as the server sent it
	Synced bool            // it came from a sync reply rather than live on the inbox
}

// envelope is the part of every downlink payload that says what it is.
type envelope struct {
	Kind string `json:"kind"`
	Ver  uint64 `json:"ver"`
	CMID string `json:"cmid"`
}

// rawSync is a sync batch whose items keep their raw JSON, so an event from
// a sync is delivered exactly as its live twin would be.
type rawSync struct {
	wire.Sync
	Items []json.RawMessage `json:"items"`
}

// maxPayload bounds a decompressed payload (a defence against gzip bombs).
const maxPayload = 64 << 20

// gzipMagic starts every gzip stream (RFC 1952).
var gzipMagic = []byte{0x1f, 0x8b}

// Decompress returns p itself, or its decompressed content when p is gzip
// (a sync reply to a request with "compress":"gzip" is). Output is limited
// to 64 MiB.
func Decompress(p []byte) ([]byte, error) {
	if !bytes.HasPrefix(p, gzipMagic) {
		return p, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(p))
	if err != nil {
		return nil, fmt.Errorf("gunzip payload: %w", err)
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, maxPayload+1))
	if err != nil {
		return nil, fmt.Errorf("gunzip payload: %w", err)
	}
	if len(out) > maxPayload {
		return nil, errors.New("gunzip payload: over 64 MiB")
	}
	return out, nil
}

// decodeEvent turns one event's JSON into an Event.
func decodeEvent(raw json.RawMessage, synced bool) (Event, error) {
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	ev := Event{Kind: env.Kind, Ver: env.Ver, Raw: raw, Synced: synced}
	switch env.Kind {
	case wire.KindMsg, "":
		var m wire.Msg
		if err := json.Unmarshal(raw, &m); err != nil {
			return Event{}, fmt.Errorf("decode msg: %w", err)
		}
		if m.Kind == "" { // sync items may leave the kind out
			m.Kind = wire.KindMsg
		}
		ev.Kind, ev.Msg = wire.KindMsg, &m
	case wire.KindUnread:
		var u wire.Unread
		if err := json.Unmarshal(raw, &u); err != nil {
			return Event{}, fmt.Errorf("decode unread: %w", err)
		}
		ev.Unread = &u
	}
	return ev, nil
}

// decodeSync decodes a (decompressed) sync batch and its items.
func decodeSync(p []byte) (wire.Sync, []Event, error) {
	var rs rawSync
	if err := json.Unmarshal(p, &rs); err != nil {
		return wire.Sync{}, nil, fmt.Errorf("decode sync: %w", err)
	}
	evs := make([]Event, 0, len(rs.Items))
	for _, it := range rs.Items {
		ev, err := decodeEvent(it, true)
		if err != nil {
			return wire.Sync{}, nil, err
		}
		evs = append(evs, ev)
	}
	return rs.Sync, evs, nil
}

// NewCMID returns a random client message ID ("c-" and 24 hex digits).
func NewCMID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "c-" + hex.EncodeToString(b[:])
}

// Retryable reports whether err is a server answer that says "nothing was
// done, send the same thing again later": codes unavailable and busy.
func Retryable(err error) bool {
	var we *wire.Error
	return errors.As(err, &we) && (we.Code == wire.CodeUnavailable || we.Code == wire.CodeBusy)
}
