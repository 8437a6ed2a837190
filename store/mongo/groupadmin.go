package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/imqtt/imqtt/store"
)

// olderThan matches a row whose last group change (changed) is below seq,
// or that has had none.
func olderThan(seq uint64) bson.E {
	return bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "changed", Value: bson.D{{Key: "$lt", Value: int64(seq)}}}},
		bson.D{{Key: "changed", Value: bson.D{{Key: "$exists", Value: false}}}},
	}}
}

// applyAdmin applies group administration (store.GroupUpdate,
// store.MemberUpdate): each a conditional $set on its row that matches
// only while the row's changed is below the update's seq, so a replay (a
// claim finishing a cut-short commit) changes nothing more. The caller
// holds lockRMW: FerretDB's conditional updates are not atomic.
func (s *Store) applyAdmin(ctx context.Context, gs []store.GroupUpdate, ms []store.MemberUpdate) error {
	for _, u := range gs {
		set := bson.D{{Key: "changed", Value: int64(u.Seq)}}
		if u.Name != nil {
			set = append(set, bson.E{Key: "name", Value: *u.Name})
		}
		if u.Notice != nil {
			set = append(set, bson.E{Key: "notice", Value: *u.Notice})
		}
		if u.Avatar != nil {
			set = append(set, bson.E{Key: "avatar", Value: *u.Avatar})
		}
		if u.Muted != nil {
			set = append(set, bson.E{Key: "muted", Value: *u.Muted})
		}
		if u.Owner != "" {
			set = append(set, bson.E{Key: "owner", Value: u.Owner})
		}
		update := bson.D{{Key: "$set", Value: set}}
		if u.Disbanded != 0 { // the first disband stays
			update = append(update, bson.E{Key: "$min", Value: bson.D{{Key: "disbanded", Value: u.Disbanded}}})
		}
		if _, err := s.c.groups.UpdateOne(ctx, append(byID(u.Group), olderThan(u.Seq)), update); err != nil {
			return fmt.Errorf("update group %s: %w", u.Group, err)
		}
	}
	if len(ms) == 0 {
		return nil
	}
	ops := make([]mongo.WriteModel, 0, len(ms))
	for _, u := range ms {
		set := bson.D{{Key: "changed", Value: int64(u.Seq)}}
		if u.Role != "" {
			set = append(set, bson.E{Key: "role", Value: u.Role})
		}
		if u.MuteUntil != nil {
			set = append(set, bson.E{Key: "mute_until", Value: *u.MuteUntil})
		}
		ops = append(ops, mongo.NewUpdateOneModel().SetFilter(append(memberFilter(u.Group, u.User), olderThan(u.Seq))).
			SetUpdate(bson.D{{Key: "$set", Value: set}}))
	}
	if err := s.bulkWrite(ctx, s.c.members, ops); err != nil {
		return fmt.Errorf("update members: %w", err)
	}
	return nil
}
