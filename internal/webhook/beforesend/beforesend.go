// Package beforesend asks the operator's backend about each send before it
// is stored: the message.before_send webhook (SPEC §14,
// docs/integration.md#messagebefore_send), chat.BeforeSend over HTTP.
//
// chat runs it off the senders' goroutines with its own concurrency,
// deadline and fail policy (chat/moderate.go); this package is the request
// and the reading of the answer.
package beforesend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bwmarrin/snowflake"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/webhook"
	"github.com/imqtt/imqtt/wire"
)

// Hook is chat.BeforeSend over a webhook.Client.
type Hook struct {
	post *webhook.Client
	ids  *snowflake.Node
	now  func() time.Time
}

var _ chat.BeforeSend = (*Hook)(nil)

// New returns a Hook posting through post; node numbers its event IDs
// (the node's snowflake number: IDs unique across nodes). post should keep
// answers of at least MaxAnswer(maxBody) bytes.
func New(post *webhook.Client, node int64) (*Hook, error) {
	ids, err := snowflake.NewNode(node)
	if err != nil {
		return nil, fmt.Errorf("before_send: %w", err)
	}
	return &Hook{post: post, ids: ids, now: time.Now}, nil
}

// MaxAnswer is the most of an answer read for a server whose sends are at
// most maxBody bytes: a modify's body and meta, JSON-escaped, and room.
func MaxAnswer(maxBody int) int { return 6*maxBody + 16<<10 }

// Data is the event's data: who sends, and the send as the device sent it
// (wire.Send's fields, flattened: cmid, to or group, type, body, media,
// meta, mentions).
type Data struct {
	From   string `json:"from"`
	Device string `json:"device"`
	wire.Send
}

// answer is what the backend answers.
type answer struct {
	Action  string          `json:"action"`
	Message string          `json:"message"`
	Body    *string         `json:"body"`
	Meta    json.RawMessage `json:"meta"`
}

// Errors: no verdict (chat applies --webhook-fail).
var (
	ErrStatus = errors.New("before_send: the backend answered an error status")
	ErrAnswer = fmt.Errorf("before_send: the answer is not a verdict: %w", chat.ErrBadVerdict)
)

// BeforeSend posts the send and reads the verdict.
func (h *Hook) BeforeSend(ctx context.Context, from chat.Sender, req *wire.Send) (chat.Verdict, error) {
	now := h.now()
	data, err := json.Marshal(Data{From: from.User, Device: from.Device, Send: *req})
	if err != nil {
		return chat.Verdict{}, fmt.Errorf("before_send: encode: %w", err)
	}
	body, err := json.Marshal(webhook.Event{ID: "evt-" + h.ids.Generate().String(), Type: webhook.BeforeSend,
		TS: now.UnixMilli(), Data: data})
	if err != nil {
		return chat.Verdict{}, fmt.Errorf("before_send: encode: %w", err)
	}
	a, err := h.post.Post(ctx, webhook.BeforeSend, body)
	if err != nil {
		return chat.Verdict{}, err
	}
	if !a.OK() {
		return chat.Verdict{}, fmt.Errorf("%w: %s", ErrStatus, strconv.Itoa(a.Status))
	}
	if a.Truncated {
		return chat.Verdict{}, fmt.Errorf("%w: longer than %d bytes", ErrAnswer, len(a.Body))
	}
	var an answer
	if err := wire.Unmarshal(a.Body, &an); err != nil {
		return chat.Verdict{}, fmt.Errorf("%w: %v", ErrAnswer, err)
	}
	switch an.Action {
	case chat.ActionAllow:
		return chat.Verdict{Action: an.Action}, nil
	case chat.ActionReject:
		if len(an.Message) > maxMessage {
			an.Message = strings.ToValidUTF8(an.Message[:maxMessage], "")
		}
		return chat.Verdict{Action: an.Action, Message: an.Message}, nil
	case chat.ActionModify:
		if an.Body == nil && an.Meta == nil {
			return chat.Verdict{}, fmt.Errorf("%w: modify without body or meta", ErrAnswer)
		}
		return chat.Verdict{Action: an.Action, Body: an.Body, Meta: an.Meta}, nil
	}
	return chat.Verdict{}, fmt.Errorf("%w: action %q", ErrAnswer, truncate(an.Action, 32))
}

// maxMessage bounds a rejection's message, which the sender is told.
const maxMessage = 512

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
