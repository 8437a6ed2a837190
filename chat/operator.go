package chat

import (
	"context"
	"errors"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// An operator's group actions (the admin API, docs/http.md#admin-api):
// they need no membership, and what members learn names SystemUser as the
// one who acted ("by": "system"), so nobody takes them for the owner's.

// operator is the Sender of an operator's action.
var operator = Sender{User: SystemUser, Server: true}

// DisbandAsOperator disbands a group as DisbandGroup does, on an
// operator's word: every member gets a "disbanded" group event by
// "system". ErrNotFound for no such group, ErrGroupGone if it is
// disbanded already.
func (s *Service) DisbandAsOperator(ctx context.Context, group string) error {
	return s.DisbandGroup(ctx, operator, group) // checkAdmin tells the operator which
}

// RemoveAsOperator removes a member from a group on an operator's word:
// the member gets a "removed" group event by "system". The owner cannot
// be removed (ErrForbidden: disband the group instead).
func (s *Service) RemoveAsOperator(ctx context.Context, group, user string) error {
	u, ok := wire.NormUser(user)
	if !ok {
		return refuse(ErrBadRequest, "user: not a user ID")
	}
	group, err := s.liveGroup(ctx, group)
	if err != nil {
		return err
	}
	switch m, err := s.st.GetMember(ctx, group, u); {
	case errors.Is(err, store.ErrNotFound):
		return refuse(ErrNotFound, u+" is not a member of "+group)
	case err != nil:
		return errStore("member", err)
	case m.Role == store.RoleOwner:
		return refuse(ErrForbidden, u+" owns "+group+": disband the group instead")
	}
	return s.dropMember(ctx, group, u, SystemUser)
}

// liveGroup is the normalised ID of a group that exists and is not
// disbanded: ErrNotFound, ErrGroupGone, or a store failure otherwise.
func (s *Service) liveGroup(ctx context.Context, group string) (string, error) {
	group, err := normGroup(group)
	if err != nil {
		return "", err
	}
	switch g, err := s.st.GetGroup(ctx, group); {
	case errors.Is(err, store.ErrNotFound):
		return "", refuse(ErrNotFound, "no such group: "+group)
	case err != nil:
		return "", errStore("get group", err)
	case g.Disbanded != 0:
		return "", groupGone(group)
	}
	return group, nil
}
