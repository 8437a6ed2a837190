package chat_test

import (
	"testing"
	"time"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// toldBy reports whether user got a group event of action on group by
// "by".
func (e *lifeEnv) toldBy(user, group, action, by string) bool {
	for _, ev := range e.ev.other(user, wire.KindGroup) {
		if ge, ok := ev.(wire.GroupEvent); ok && ge.Group == group && ge.Action == action && ge.By == by {
			return true
		}
	}
	return false
}

// TestOperatorGroupActions: an operator removes any member but the owner
// and disbands any live group, without being a member; members are told
// it was "system"; a missing group or member is not_found, a disbanded
// group group_gone.
func TestOperatorGroupActions(t *testing.T) {
	e, g := adminGroup(t, chat.Options{})
	wantCode(t, e.svc.RemoveAsOperator(e.ctx, "nope", "carol"), wire.CodeNotFound)
	wantCode(t, e.svc.RemoveAsOperator(e.ctx, g, "eve"), wire.CodeNotFound)
	wantCode(t, e.svc.RemoveAsOperator(e.ctx, g, "alice"), wire.CodeForbidden)
	wantCode(t, e.svc.RemoveAsOperator(e.ctx, g, "not a user"), wire.CodeBadRequest)
	if err := e.svc.RemoveAsOperator(e.ctx, g, "Carol"); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "carol told of her removal", 5*time.Second, func() bool { return e.toldBy("carol", g, wire.GroupRemoved, chat.SystemUser) })
	wantCode(t, e.svc.RemoveAsOperator(e.ctx, g, "carol"), wire.CodeNotFound)

	wantCode(t, e.svc.DisbandAsOperator(e.ctx, "nope"), wire.CodeNotFound)
	if err := e.svc.DisbandAsOperator(e.ctx, g); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "dave told of the disband", 5*time.Second, func() bool { return e.toldBy("dave", g, wire.GroupDisbanded, chat.SystemUser) })
	wantCode(t, e.svc.DisbandAsOperator(e.ctx, g), wire.CodeGroupGone)
	wantCode(t, e.svc.RemoveAsOperator(e.ctx, g, "dave"), wire.CodeGroupGone)
}
