package chat

import (
	"context"
	"errors"
	"fmt"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// What the server API (internal/api/server.go, docs/integration.md#server-api)
// asks of the core: sends on a user's behalf or as the reserved sender
// system, and a deleted user's departure from the core's state.

// SystemUser is the reserved sender of the server's own messages
// (docs/protocol.md#identity): no one can register or log in as it. It may
// send to any user and any group without being a member; it keeps no
// inbox, so its acks carry ver 0.
const SystemUser = "system"

// ServerDevice is the device a server-API send is recorded under (the
// operator log's client ID, system/server or alice/server).
const ServerDevice = "server"

func (f Sender) system() bool { return f.Server && f.User == SystemUser }

// SendAs stores and delivers req as a send of from, through the same
// pipeline as every send (validated, deduped by (from, cmid), versioned,
// acked, pushed), for the server API: from is an existing user, who must be
// a member of a group it sends to, or SystemUser. It is not bound by
// SendRate (the server API bounds each key itself). A replayed call, the
// same from and cmid, answers with the first's ack and stores nothing.
func (s *Service) SendAs(ctx context.Context, from string, req wire.Send) (wire.Ack, error) {
	user, ok := wire.NormUser(from)
	if !ok {
		return wire.Ack{}, refuse(ErrBadRequest, "from must be a user ID or "+SystemUser)
	}
	if user != SystemUser {
		if wire.ReservedUser(user) {
			return wire.Ack{}, refuse(ErrNoSuchUser, "no such user: "+user)
		}
		exists, err := s.userExists(ctx, user)
		if err != nil {
			s.log.Error("look up sender", "user", user, "err", err)
			return wire.Ack{}, unavailable()
		}
		if !exists {
			return wire.Ack{}, refuse(ErrNoSuchUser, "no such user: "+user)
		}
	}
	return s.Send(ctx, Sender{User: user, Device: ServerDevice, Server: true}, req)
}

// ForgetUser drops a deleted user from this node's cache of users known
// to exist, so that sends to them are refused from now on.
func (s *Service) ForgetUser(user string) { s.known.Remove(user) }

// LeaveGroups removes a deleted user from every group they are in, as if
// they left (the other members' fan-out follows; their own devices are
// told). An owner leaves too: the group keeps its owner field, the
// deleted ID, which no one can take, so no one gains the owner's rights and
// the admins keep theirs. It returns how many groups they left.
func (s *Service) LeaveGroups(ctx context.Context, user string) (int, error) {
	ms, err := s.st.UserGroups(ctx, user)
	if err != nil {
		return 0, fmt.Errorf("groups of %s: %w", user, err)
	}
	n := 0
	for _, m := range ms {
		err := s.st.RemoveMember(ctx, m.Group, user)
		if errors.Is(err, store.ErrNotFound) {
			continue // left meanwhile
		}
		if err != nil {
			return n, fmt.Errorf("leave group %s: %w", m.Group, err)
		}
		s.membership(m.Group, user, false)
		s.groupEvent(user, m.Group, "removed", SystemUser)
		n++
	}
	return n, nil
}
