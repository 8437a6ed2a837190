package chat

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Burn after reading (docs/protocol.md#burn-after-reading). A 1:1 send with
// a TTL is stored with it and with an unread burn (store.Burns); the
// recipient's read of it makes the burn due at the read plus the TTL; when
// it is due the burner (internal/retention) calls Expire, which recalls the
// message for both sides as the server: a recall change record from
// store.BurnedBy, delivered live and replayed by sync with "expired":true,
// its media revoked as any recall's.

// startBurns makes the burns of user's conversation with peer up to upto
// due. A store that fails leaves them unread: the next read starts them.
func (s *Service) startBurns(ctx context.Context, user, peer string, upto int64) {
	b, ok := s.st.(store.Burns)
	if !ok || upto <= 0 {
		return
	}
	if _, err := b.ReadBurns(ctx, user, peer, upto, time.Now().UnixMilli()); err != nil && !storeLogged(err) {
		s.log.Error("start burns", "user", user, "err", err)
	}
}

// BurnCMID is the cmid of the server's recall of a burnt message: one
// per message, so that two nodes that both find it due store one recall.
func BurnCMID(id int64) string { return "burn-" + strconv.FormatInt(id, 10) }

// Expire recalls the burn-after-reading message id for both sides. It
// returns nil once the recall is stored (by this call or an earlier one),
// or if there is nothing to recall (the message is gone, or was recalled
// by its sender first); an error if it should be tried again.
func (s *Service) Expire(ctx context.Context, id int64) error {
	from := Sender{User: SystemUser, Device: ServerDevice, Server: true}
	_, err := Wait(ctx, func(done func(Result)) {
		s.enqueue(ctx, &sendOp{from: from, req: wire.Send{CMID: BurnCMID(id)}, done: done, start: time.Now(),
			chg: &change{kind: store.ChangeRecall, target: id}})
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotAllowed) {
		return nil
	}
	return err
}

// checkBurn decides the server's recall of a burnt message against the
// batch's view and applies it there.
func checkBurn(v *batchView, id int64, now time.Time) error {
	t := v.msgs[id]
	switch {
	case t == nil || t.Change != nil || t.Group != "":
		return noMessage()
	case t.Recalled != 0:
		return refuse(ErrNotAllowed, "the message was recalled already")
	}
	t.Recalled, t.RecalledBy = now.UnixMilli(), store.BurnedBy
	return nil
}
