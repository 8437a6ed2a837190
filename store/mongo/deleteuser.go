package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

// The Erasure role (store/erase.go): deleting a user's data in bounded,
// idempotent steps. Each step reads a page of rows and then writes: a
// step cut short leaves rows that the next run finds again.

// TombstoneUser turns user's account document into a tombstone. The
// filter keeps the first date of an existing tombstone.
func (s *Store) TombstoneUser(ctx context.Context, user string, at int64) error {
	if err := s.begin(ctx, "tombstone user"); err != nil {
		return err
	}
	defer s.end()
	user = store.FoldID(user)
	filter := bson.D{{Key: "_id", Value: user}, {Key: "deleted", Value: bson.D{{Key: "$exists", Value: false}}}}
	update := bson.D{
		{Key: "$set", Value: bson.D{{Key: "deleted", Value: at}, {Key: "pw", Value: ""}}},
		{Key: "$unset", Value: bson.D{{Key: "display", Value: ""}}},
	}
	res, err := s.c.users.UpdateOne(ctx, filter, update)
	if err != nil {
		return fmt.Errorf("tombstone user %s: %w", user, err)
	}
	if res.MatchedCount == 0 { // a tombstone already, or nothing at all
		if err := s.c.users.FindOne(ctx, byID(user)).Err(); err != nil {
			return fmt.Errorf("tombstone user %s: %w", user, notFound(err))
		}
	}
	return nil
}

// UserTombstone returns when user was tombstoned.
func (s *Store) UserTombstone(ctx context.Context, user string) (int64, error) {
	if err := s.begin(ctx, "user tombstone"); err != nil {
		return 0, err
	}
	defer s.end()
	user = store.FoldID(user)
	var d userDoc
	if err := s.c.users.FindOne(ctx, byID(user)).Decode(&d); err != nil {
		return 0, fmt.Errorf("user tombstone %s: %w", user, notFound(err))
	}
	if d.Deleted == 0 {
		return 0, fmt.Errorf("user tombstone %s: %w", user, store.ErrNotFound)
	}
	return d.Deleted, nil
}

// DeleteUserTokens deletes a page of user's tokens (the {user: 1} index).
func (s *Store) DeleteUserTokens(ctx context.Context, user string, limit int) ([]string, error) {
	if err := s.begin(ctx, "delete user tokens"); err != nil {
		return nil, err
	}
	defer s.end()
	limit = clampLimit(limit)
	cur, err := s.c.tokens.Find(ctx, bson.D{{Key: "user", Value: user}},
		options.Find().SetLimit(int64(limit)).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("delete user tokens: %w", err)
	}
	var docs []struct {
		Hash string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("delete user tokens: %w", err)
	}
	if len(docs) == 0 {
		return nil, nil
	}
	hashes := make([]string, len(docs))
	for i, d := range docs {
		hashes[i] = d.Hash
	}
	if _, err := s.c.tokens.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: hashes}}}}); err != nil {
		return nil, fmt.Errorf("delete user tokens: %w", err)
	}
	return hashes, nil
}

// EraseSentMessages reads a page of user's acks (the unique {from, cmid}
// index), anonymises their messages, then deletes the acks: a run cut
// between the two finds the same acks and erases the same messages again.
func (s *Store) EraseSentMessages(ctx context.Context, user string, limit int) (int, []string, error) {
	if err := s.begin(ctx, "erase sent messages"); err != nil {
		return 0, nil, err
	}
	defer s.end()
	limit = clampLimit(limit)
	cur, err := s.c.acks.Find(ctx, bson.D{{Key: "from", Value: user}},
		options.Find().SetLimit(int64(limit)).SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "msg", Value: 1}}))
	if err != nil {
		return 0, nil, fmt.Errorf("erase sent messages: %w", err)
	}
	var acks []struct {
		ID  bson.ObjectID `bson:"_id"`
		Msg int64         `bson:"msg"`
	}
	if err := cur.All(ctx, &acks); err != nil {
		return 0, nil, fmt.Errorf("erase sent messages: %w", err)
	}
	if len(acks) == 0 {
		return 0, nil, nil
	}
	ids := make([]int64, len(acks))
	ackIDs := make([]bson.ObjectID, len(acks))
	for i, a := range acks {
		ids[i], ackIDs[i] = a.Msg, a.ID
	}
	media, err := s.anonymise(ctx, ids)
	if err != nil {
		return 0, nil, err
	}
	if _, err := s.c.acks.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ackIDs}}}}); err != nil {
		return 0, nil, fmt.Errorf("erase sent messages: delete acks: %w", err)
	}
	return len(acks), media, nil
}

// anonymise replaces the messages with these IDs by their anonymised
// form (whole documents: FerretDB v1 keeps a nested document that $unset
// names), and returns the media IDs they referred to.
func (s *Store) anonymise(ctx context.Context, ids []int64) ([]string, error) {
	cur, err := s.c.messages.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, fmt.Errorf("erase sent messages: %w", err)
	}
	var docs []messageDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("erase sent messages: %w", err)
	}
	var media []string
	models := make([]mongo.WriteModel, 0, len(docs))
	for _, d := range docs {
		if d.Media != "" {
			media = append(media, d.Media)
		}
		anon := messageDoc{ID: d.ID, From: store.DeletedSender, To: d.To, Group: d.Group, Seq: d.Seq, Type: d.Type, TS: d.TS}
		models = append(models, mongo.NewReplaceOneModel().SetFilter(byID(d.ID)).SetReplacement(anon))
	}
	if len(models) == 0 {
		return nil, nil
	}
	if _, err := s.c.messages.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
		return nil, fmt.Errorf("erase sent messages: %w", err)
	}
	return media, nil
}

// DeleteUserInbox deletes a page of user's entries (the unique {user, ver}
// index), once none is left a page of the user's hidden rows ({user, msg}),
// and then the user's conversation rows and settings. The user's
// reactions stay: the counts they are part of stay right.
func (s *Store) DeleteUserInbox(ctx context.Context, user string, limit int) (int, error) {
	if err := s.begin(ctx, "delete user inbox"); err != nil {
		return 0, err
	}
	defer s.end()
	limit = clampLimit(limit)
	byUser := bson.D{{Key: "user", Value: user}}
	cur, err := s.c.entries.Find(ctx, byUser,
		options.Find().SetLimit(int64(limit)).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("delete user inbox: %w", err)
	}
	var docs []struct {
		ID bson.ObjectID `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return 0, fmt.Errorf("delete user inbox: %w", err)
	}
	if len(docs) == 0 {
		return s.deleteUserRest(ctx, user, limit)
	}
	ids := make([]bson.ObjectID, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	res, err := s.c.entries.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return 0, fmt.Errorf("delete user inbox: %w", err)
	}
	return max(int(res.DeletedCount), 1), nil
}

// deleteUserRest deletes a page of user's hidden rows, or once none is
// left the conversation rows and the settings.
func (s *Store) deleteUserRest(ctx context.Context, user string, limit int) (int, error) {
	byUser := bson.D{{Key: "user", Value: user}}
	cur, err := s.c.hidden.Find(ctx, byUser, options.Find().SetLimit(int64(limit)).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("delete user inbox: hidden rows: %w", err)
	}
	var hidden []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &hidden); err != nil {
		return 0, fmt.Errorf("delete user inbox: hidden rows: %w", err)
	}
	if len(hidden) > 0 {
		ids := make([]string, len(hidden))
		for i, h := range hidden {
			ids[i] = h.ID
		}
		res, err := s.c.hidden.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
		if err != nil {
			return 0, fmt.Errorf("delete user inbox: hidden rows: %w", err)
		}
		return max(int(res.DeletedCount), 1), nil
	}
	res, err := s.c.convs.DeleteMany(ctx, byUser)
	if err != nil {
		return 0, fmt.Errorf("delete user inbox: conversations: %w", err)
	}
	set, err := s.c.userSettings.DeleteOne(ctx, byID(user))
	if err != nil {
		return 0, fmt.Errorf("delete user inbox: settings: %w", err)
	}
	return int(res.DeletedCount + set.DeletedCount), nil
}
