package mongo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

// findAll decodes every document filter finds, in opts' order, into out
// (a pointer to a slice).
func findAll(ctx context.Context, c *mongo.Collection, filter any, opts *options.FindOptionsBuilder, out any) error {
	if opts == nil {
		opts = options.Find()
	}
	cur, err := c.Find(ctx, filter, opts)
	if err != nil {
		return err
	}
	return cur.All(ctx, out)
}

// lookupChunk bounds the keys of one LookupAcks query.
const lookupChunk = 256

// LookupAcks returns the dedupe rows of the keys that have one: one query
// per lookupChunk keys, an $or of (from, cmid) pairs that MongoDB answers
// from the {from, cmid} index clause by clause.
func (s *Store) LookupAcks(ctx context.Context, keys []store.AckKey) (map[store.AckKey]store.Ack, error) {
	found := map[store.AckKey]store.Ack{}
	if len(keys) == 0 {
		return found, nil
	}
	if err := s.begin(ctx, "lookup acks"); err != nil {
		return nil, err
	}
	defer s.end()
	for chunk := range slices.Chunk(keys, lookupChunk) {
		or := make(bson.A, len(chunk))
		for i, k := range chunk {
			or[i] = bson.D{{Key: "from", Value: k.From}, {Key: "cmid", Value: k.CMID}}
		}
		var docs []ackDoc
		if err := findAll(ctx, s.c.acks, bson.D{{Key: "$or", Value: or}}, nil, &docs); err != nil {
			return nil, fmt.Errorf("lookup acks: %w", err)
		}
		for i := range docs {
			a := docs[i].ack()
			found[store.AckKey{From: a.From, CMID: a.CMID}] = a
		}
	}
	return found, nil
}

// Range returns user's events with ver > since, ascending, at most limit
// (0 or less: store.DefaultLimit; capped at MaxLimit). An entry whose
// message is missing (a commit that failed half-way) is skipped.
func (s *Store) Range(ctx context.Context, user string, since uint64, limit int) ([]store.Event, error) {
	if err := s.begin(ctx, "range"); err != nil {
		return nil, err
	}
	defer s.end()
	if since >= math.MaxInt64 {
		return nil, nil
	}
	var docs []entryDoc
	filter := bson.D{{Key: "user", Value: user}, {Key: "ver", Value: bson.D{{Key: "$gt", Value: int64(since)}}}}
	opts := options.Find().SetSort(bson.D{{Key: "user", Value: 1}, {Key: "ver", Value: 1}}).SetLimit(int64(clampLimit(limit)))
	if err := findAll(ctx, s.c.entries, filter, opts, &docs); err != nil {
		return nil, fmt.Errorf("range %s: %w", user, err)
	}
	evs, err := s.withMessages(ctx, docs)
	if err != nil {
		return nil, fmt.Errorf("range %s: %w", user, err)
	}
	return evs, nil
}

// withMessages pairs entries with their messages, skipping the missing.
func (s *Store) withMessages(ctx context.Context, docs []entryDoc) ([]store.Event, error) {
	if len(docs) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(docs))
	for i := range docs {
		ids[i] = docs[i].MsgID
	}
	msgs, err := s.messageMap(ctx, ids)
	if err != nil {
		return nil, err
	}
	evs := make([]store.Event, 0, len(docs))
	for i := range docs {
		if m, ok := msgs[docs[i].MsgID]; ok {
			evs = append(evs, store.Event{Entry: docs[i].entry(), Msg: m})
		}
	}
	return evs, nil
}

// messageMap reads the messages with these IDs.
func (s *Store) messageMap(ctx context.Context, ids []int64) (map[int64]store.Message, error) {
	var docs []messageDoc
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}
	if err := findAll(ctx, s.c.messages, filter, nil, &docs); err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	msgs := make(map[int64]store.Message, len(docs))
	for i := range docs {
		msgs[docs[i].ID] = docs[i].message()
	}
	return msgs, nil
}

// Head returns user's highest committed version, 0 if none.
func (s *Store) Head(ctx context.Context, user string) (uint64, error) {
	if err := s.begin(ctx, "head"); err != nil {
		return 0, err
	}
	defer s.end()
	var d entryDoc
	opts := options.FindOne().SetSort(bson.D{{Key: "user", Value: -1}, {Key: "ver", Value: -1}}).
		SetProjection(bson.D{{Key: "ver", Value: 1}})
	err := s.c.entries.FindOne(ctx, bson.D{{Key: "user", Value: user}}, opts).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		// A swept inbox keeps its head: versions never go back (retention.go).
		var f struct {
			V int64 `bson:"v"`
		}
		if err := s.floors().FindOne(ctx, byID("u:"+user)).Decode(&f); err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return 0, fmt.Errorf("head %s: %w", user, err)
		}
		return uint64(f.V), nil
	}
	if err != nil {
		return 0, fmt.Errorf("head %s: %w", user, err)
	}
	return uint64(d.Ver), nil
}

// History returns the events of user's conversation with peer whose message
// ID is below before (0: no bound), newest first, at most limit.
func (s *Store) History(ctx context.Context, user, peer string, before int64, limit int) ([]store.Event, error) {
	if err := s.begin(ctx, "history"); err != nil {
		return nil, err
	}
	defer s.end()
	if before < 0 {
		return nil, nil
	}
	filter := bson.D{{Key: "user", Value: user}, {Key: "peer", Value: peer}}
	if before > 0 {
		filter = append(filter, bson.E{Key: "msg", Value: bson.D{{Key: "$lt", Value: before}}})
	}
	var docs []entryDoc
	opts := options.Find().SetLimit(int64(clampLimit(limit))).
		SetSort(bson.D{{Key: "user", Value: 1}, {Key: "peer", Value: 1}, {Key: "msg", Value: -1}})
	if err := findAll(ctx, s.c.entries, filter, opts, &docs); err != nil {
		return nil, fmt.Errorf("history %s/%s: %w", user, peer, err)
	}
	evs, err := s.withMessages(ctx, docs)
	if err != nil {
		return nil, fmt.Errorf("history %s/%s: %w", user, peer, err)
	}
	return evs, nil
}

// Conversations returns user's rows, newest LastTS first, ties by Last
// descending.
func (s *Store) Conversations(ctx context.Context, user string) ([]store.Conversation, error) {
	if err := s.begin(ctx, "conversations"); err != nil {
		return nil, err
	}
	defer s.end()
	var docs []convDoc
	if err := findAll(ctx, s.c.convs, bson.D{{Key: "user", Value: user}}, nil, &docs); err != nil {
		return nil, fmt.Errorf("conversations %s: %w", user, err)
	}
	if len(docs) == 0 {
		return nil, nil
	}
	rows := make([]store.Conversation, len(docs))
	for i := range docs {
		rows[i] = docs[i].conversation()
	}
	store.SortConversations(rows)
	return rows, nil
}

// GetMessages returns the messages with these IDs in the same order,
// skipping missing ones.
func (s *Store) GetMessages(ctx context.Context, ids []int64) ([]store.Message, error) {
	if err := s.begin(ctx, "get messages"); err != nil {
		return nil, err
	}
	defer s.end()
	msgs, err := s.getMessages(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("get messages: %w", err)
	}
	return msgs, nil
}

func (s *Store) getMessages(ctx context.Context, ids []int64) ([]store.Message, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	byID, err := s.messageMap(ctx, ids)
	if err != nil {
		return nil, err
	}
	msgs := make([]store.Message, 0, len(byID))
	for _, id := range ids {
		if m, ok := byID[id]; ok {
			msgs = append(msgs, m)
		}
	}
	return msgs, nil
}

// MediaGrants returns the principals granted media.
func (s *Store) MediaGrants(ctx context.Context, media string) ([]string, error) {
	if err := s.begin(ctx, "media grants"); err != nil {
		return nil, err
	}
	defer s.end()
	var docs []grantDoc
	if err := findAll(ctx, s.c.grants, bson.D{{Key: "media", Value: media}}, nil, &docs); err != nil {
		return nil, fmt.Errorf("media grants %s: %w", media, err)
	}
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.Principal
	}
	return out, nil
}
