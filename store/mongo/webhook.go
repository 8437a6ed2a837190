package mongo

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

// The webhook outbox (store.Webhooks) in two collections (doc.go):
//
//	webhook_events {_id: event ID, lane, type, ts, data (JSON text)}
//	webhook_lanes  {_id: lane, due, attempts, holder, until, adds}
//
// A lane's document is upserted with its events (adds counts the upserts)
// and holds its head's retry state and its claim. It is deleted, once its
// holder finds no event left, only if adds has not moved since the holder
// read it: an event added in between either is seen by the look for events
// (inserted before it) or upserts the lane again (after the delete), so no
// event is left without its lane.
//
// Claims are a conditional update of the lane's document, serialized by
// lockRMW where the server's updates are not atomic (FerretDB).

type webhookEventDoc struct {
	ID   int64  `bson:"_id"`
	Lane string `bson:"lane"`
	Type string `bson:"type"`
	TS   int64  `bson:"ts"`
	Data string `bson:"data"`
}

type webhookLaneDoc struct {
	Lane     string `bson:"_id"`
	Due      int64  `bson:"due"`
	Attempts int    `bson:"attempts"`
	Holder   string `bson:"holder"`
	Until    int64  `bson:"until"`
	Adds     int64  `bson:"adds"`
}

func checkWebhookEvents(evs []store.WebhookEvent) error {
	for i := range evs {
		if evs[i].ID < 0 || evs[i].Lane == "" || evs[i].Type == "" {
			return fmt.Errorf("webhook event %d of %q: %w", evs[i].ID, evs[i].Lane, ErrInvalid)
		}
	}
	return nil
}

// insertWebhookEvents inserts evs (a duplicate is one already there) and
// then upserts their lanes. The caller holds lockRMW.
func (s *Store) insertWebhookEvents(ctx context.Context, evs []store.WebhookEvent) error {
	if len(evs) == 0 {
		return nil
	}
	docs := make([]any, len(evs))
	lanes := make(map[string]bool)
	for i, e := range evs {
		docs[i] = webhookEventDoc{ID: e.ID, Lane: e.Lane, Type: e.Type, TS: e.TS, Data: string(e.Data)}
		lanes[e.Lane] = true
	}
	if _, err := insertMany(ctx, s.c.webhookEvents, docs); err != nil {
		return fmt.Errorf("insert webhook events: %w", err)
	}
	models := make([]mongo.WriteModel, 0, len(lanes))
	for lane := range lanes {
		models = append(models, mongo.NewUpdateOneModel().SetFilter(byID(lane)).SetUpsert(true).SetUpdate(bson.D{
			{Key: "$setOnInsert", Value: bson.D{{Key: "due", Value: int64(0)}, {Key: "attempts", Value: 0},
				{Key: "holder", Value: ""}, {Key: "until", Value: int64(0)}}},
			{Key: "$inc", Value: bson.D{{Key: "adds", Value: int64(1)}}},
		}))
	}
	if err := s.bulkWrite(ctx, s.c.webhookLanes, models); err != nil {
		return fmt.Errorf("upsert webhook lanes: %w", err)
	}
	return nil
}

// AddWebhookEvents inserts the events, then their lanes.
func (s *Store) AddWebhookEvents(ctx context.Context, evs []store.WebhookEvent) error {
	if len(evs) == 0 {
		return nil
	}
	if err := s.begin(ctx, "add webhook events"); err != nil {
		return err
	}
	defer s.end()
	if err := checkWebhookEvents(evs); err != nil {
		return fmt.Errorf("add webhook events: %w", err)
	}
	defer s.lockRMW(ctx)()
	return s.insertWebhookEvents(ctx, evs)
}

// DueWebhookLanes reads the lanes on {due: 1}.
func (s *Store) DueWebhookLanes(ctx context.Context, now int64, n int) ([]store.WebhookLane, error) {
	if err := s.begin(ctx, "due webhook lanes"); err != nil {
		return nil, err
	}
	defer s.end()
	if n <= 0 {
		n = store.DefaultLimit
	}
	var docs []webhookLaneDoc
	filter := bson.D{{Key: "due", Value: bson.D{{Key: "$lte", Value: now}}}, {Key: "until", Value: bson.D{{Key: "$lte", Value: now}}}}
	opts := options.Find().SetSort(bson.D{{Key: "due", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(n))
	if err := findAll(ctx, s.c.webhookLanes, filter, opts, &docs); err != nil {
		return nil, fmt.Errorf("due webhook lanes: %w", err)
	}
	out := make([]store.WebhookLane, len(docs))
	for i, d := range docs {
		out[i] = store.WebhookLane{Lane: d.Lane, Due: d.Due, Attempts: d.Attempts}
	}
	return out, nil
}

// ClaimWebhookLane updates the lane's document if it is free or holder's.
func (s *Store) ClaimWebhookLane(ctx context.Context, lane, holder string, now, until int64) (bool, error) {
	if err := s.begin(ctx, "claim webhook lane"); err != nil {
		return false, err
	}
	defer s.end()
	if holder == "" {
		return false, nil
	}
	defer s.lockRMW(ctx)()
	filter := bson.D{{Key: "_id", Value: lane}, {Key: "$or", Value: bson.A{
		bson.D{{Key: "until", Value: bson.D{{Key: "$lte", Value: now}}}},
		bson.D{{Key: "holder", Value: holder}},
	}}}
	res, err := s.c.webhookLanes.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{
		{Key: "holder", Value: holder}, {Key: "until", Value: until}}}})
	if err != nil {
		return false, fmt.Errorf("claim webhook lane %s: %w", lane, err)
	}
	return res.MatchedCount == 1, nil
}

// WebhookEvents reads the lane on {lane: 1, _id: 1}.
func (s *Store) WebhookEvents(ctx context.Context, lane string, n int) ([]store.WebhookEvent, error) {
	if err := s.begin(ctx, "webhook events"); err != nil {
		return nil, err
	}
	defer s.end()
	if n <= 0 {
		n = store.DefaultLimit
	}
	var docs []webhookEventDoc
	opts := options.Find().SetSort(bson.D{{Key: "lane", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(n))
	if err := findAll(ctx, s.c.webhookEvents, bson.D{{Key: "lane", Value: lane}}, opts, &docs); err != nil {
		return nil, fmt.Errorf("webhook events of %s: %w", lane, err)
	}
	out := make([]store.WebhookEvent, len(docs))
	for i, d := range docs {
		out[i] = store.WebhookEvent{ID: d.ID, Lane: d.Lane, Type: d.Type, TS: d.TS, Data: []byte(d.Data)}
	}
	return out, nil
}

// DeleteWebhookEvents deletes the events, then resets the lane's retry
// state.
func (s *Store) DeleteWebhookEvents(ctx context.Context, lane string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.begin(ctx, "delete webhook events"); err != nil {
		return err
	}
	defer s.end()
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "lane", Value: lane}}
	if _, err := s.c.webhookEvents.DeleteMany(ctx, filter); err != nil {
		return fmt.Errorf("delete webhook events of %s: %w", lane, err)
	}
	defer s.lockRMW(ctx)()
	if _, err := s.c.webhookLanes.UpdateOne(ctx, byID(lane), bson.D{{Key: "$set", Value: bson.D{
		{Key: "due", Value: int64(0)}, {Key: "attempts", Value: 0}}}}); err != nil {
		return fmt.Errorf("delete webhook events of %s: %w", lane, err)
	}
	return nil
}

// RetryWebhookLane sets the lane's retry state, and ends holder's claim.
func (s *Store) RetryWebhookLane(ctx context.Context, lane, holder string, due int64, attempts int) error {
	if err := s.begin(ctx, "retry webhook lane"); err != nil {
		return err
	}
	defer s.end()
	defer s.lockRMW(ctx)()
	set := bson.D{{Key: "due", Value: due}, {Key: "attempts", Value: attempts}}
	if _, err := s.c.webhookLanes.UpdateOne(ctx, bson.D{{Key: "_id", Value: lane}, {Key: "holder", Value: holder}},
		bson.D{{Key: "$set", Value: append(set, bson.E{Key: "holder", Value: ""}, bson.E{Key: "until", Value: int64(0)})}}); err != nil {
		return fmt.Errorf("retry webhook lane %s: %w", lane, err)
	}
	return nil
}

// ReleaseWebhookLane ends the claim, and deletes the lane's document if
// it has no event left and no event was added since (adds; see the top).
func (s *Store) ReleaseWebhookLane(ctx context.Context, lane, holder string) error {
	if err := s.begin(ctx, "release webhook lane"); err != nil {
		return err
	}
	defer s.end()
	defer s.lockRMW(ctx)()
	var d webhookLaneDoc
	err := s.c.webhookLanes.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: lane}, {Key: "holder", Value: holder}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "holder", Value: ""}, {Key: "until", Value: int64(0)}}}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release webhook lane %s: %w", lane, err)
	}
	n, err := s.c.webhookEvents.CountDocuments(ctx, bson.D{{Key: "lane", Value: lane}}, options.Count().SetLimit(1))
	if err != nil {
		return fmt.Errorf("release webhook lane %s: %w", lane, err)
	}
	if n == 0 {
		if _, err := s.c.webhookLanes.DeleteOne(ctx, bson.D{{Key: "_id", Value: lane}, {Key: "adds", Value: d.Adds}}); err != nil {
			return fmt.Errorf("release webhook lane %s: %w", lane, err)
		}
	}
	return nil
}

// SweepWebhooks deletes on {ts: 1}. A lane whose head was swept keeps its
// retry state until its next attempt (at most the backoff's cap later).
func (s *Store) SweepWebhooks(ctx context.Context, before int64) (int, error) {
	if err := s.begin(ctx, "sweep webhooks"); err != nil {
		return 0, err
	}
	defer s.end()
	res, err := s.c.webhookEvents.DeleteMany(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$lt", Value: before}}}})
	if err != nil {
		return 0, fmt.Errorf("sweep webhooks: %w", err)
	}
	return int(res.DeletedCount), nil
}

// WebhookDepth counts the events.
func (s *Store) WebhookDepth(ctx context.Context) (int64, error) {
	if err := s.begin(ctx, "webhook depth"); err != nil {
		return 0, err
	}
	defer s.end()
	n, err := s.c.webhookEvents.CountDocuments(ctx, bson.D{})
	if err != nil {
		return 0, fmt.Errorf("webhook depth: %w", err)
	}
	return n, nil
}

// ImportWebhookEvents inserts events (store/migrate), due at once.
func (s *Store) ImportWebhookEvents(ctx context.Context, evs []store.WebhookEvent) error {
	return s.AddWebhookEvents(ctx, evs)
}
