package mongo

import (
	"context"
	"fmt"
	"math"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

// sessionDoc is a persistent MQTT session (doc.go). Groups are keyed by
// groupField's escape of the group ID: a group ID may hold a '.' (the
// wire rules allow "friends.2024"), which in an update's field path would
// name a nested field.
type sessionDoc struct {
	ID           string           `bson:"_id"` // "{user}/{device}"
	User         string           `bson:"user"`
	Device       string           `bson:"device"`
	Epoch        string           `bson:"epoch"`
	Inbox        int64            `bson:"inbox"`
	Groups       map[string]int64 `bson:"groups,omitempty"`
	Subs         []subDoc         `bson:"subs"`
	Expiry       int64            `bson:"expiry"`
	Holder       string           `bson:"holder"`
	Disconnected int64            `bson:"disconnected"`
}

type subDoc struct {
	Filter string `bson:"filter"`
	QoS    int32  `bson:"qos"`
}

// sessionID is the _id of user's device's session. A device ID holds no
// '/' (checkSession), so the _id names one session only.
func sessionID(user, device string) string { return user + "/" + device }

// groupEscaper makes a group ID a field name that is one plain path
// element: no '.', no '$' (a leading one is an operator), no NUL (field
// names are C strings), and '%' escaped so that it reads back as it was.
var (
	groupEscaper   = strings.NewReplacer("%", "%25", ".", "%2E", "$", "%24", "\x00", "%00")
	groupUnescaper = strings.NewReplacer("%25", "%", "%2E", ".", "%24", "$", "%00", "\x00")
)

func groupField(group string) string { return groupEscaper.Replace(group) }

// checkSession rejects what the collection cannot hold: a device ID with
// a '/', an empty group ID, a position past MaxInt64.
func checkSession(s *store.Session) error {
	if err := checkDevice(s.Device); err != nil {
		return err
	}
	if s.Inbox > math.MaxInt64 {
		return fmt.Errorf("session %s/%s inbox %d: %w", s.User, s.Device, s.Inbox, ErrInvalid)
	}
	for g, seq := range s.Groups {
		if g == "" || seq > math.MaxInt64 {
			return fmt.Errorf("session %s/%s group %q seq %d: %w", s.User, s.Device, g, seq, ErrInvalid)
		}
	}
	return nil
}

func checkDevice(device string) error {
	if strings.IndexByte(device, '/') >= 0 {
		return fmt.Errorf("device %q: %w", device, ErrInvalid)
	}
	return nil
}

// LoadSession reads the session of user's device.
func (s *Store) LoadSession(ctx context.Context, user, device string) (store.Session, error) {
	if err := s.begin(ctx, "load session"); err != nil {
		return store.Session{}, err
	}
	defer s.end()
	if err := checkDevice(device); err != nil {
		return store.Session{}, fmt.Errorf("load session: %w", err)
	}
	var d sessionDoc
	if err := s.c.sessions.FindOne(ctx, byID(sessionID(user, device))).Decode(&d); err != nil {
		return store.Session{}, fmt.Errorf("load session %s/%s: %w", user, device, notFound(err))
	}
	ss := store.Session{User: d.User, Device: d.Device, Epoch: d.Epoch, Inbox: uint64(d.Inbox),
		Expiry: uint32(d.Expiry), Holder: d.Holder, Disconnected: d.Disconnected}
	if len(d.Groups) > 0 {
		ss.Groups = make(map[string]uint64, len(d.Groups))
		for g, seq := range d.Groups {
			ss.Groups[groupUnescaper.Replace(g)] = uint64(seq)
		}
	}
	if len(d.Subs) > 0 {
		ss.Subs = make([]store.SessionSub, len(d.Subs))
		for i, sub := range d.Subs {
			ss.Subs[i] = store.SessionSub{Filter: sub.Filter, QoS: byte(sub.QoS)}
		}
	}
	return ss, nil
}

// SaveSessions writes ss in bulk writes of upserts, each atomic on its
// document: $max moves inbox and each groups.{group} up only, $set writes
// the rest. A release (Disconnected > 0) sets holder and disconnected
// only on insert, and then in a second update whose filter is the release
// rule (the stored holder is the given one, or none): so a release by a
// connection taken over meanwhile, on any node, matches nothing. The
// updates commute, so the bulk writes are unordered, and a save that
// failed half-way is repeated safely. On FerretDB, whose updates are not
// atomic, they are serialized (lockRMW).
func (s *Store) SaveSessions(ctx context.Context, ss []store.Session) error {
	if len(ss) == 0 {
		return nil
	}
	if err := s.begin(ctx, "save sessions"); err != nil {
		return err
	}
	defer s.end()
	models := make([]mongo.WriteModel, 0, len(ss))
	for i := range ss {
		if err := checkSession(&ss[i]); err != nil {
			return fmt.Errorf("save sessions: %w", err)
		}
		models = append(models, sessionUpdates(&ss[i])...)
	}
	defer s.lockRMW(ctx)()
	if err := s.bulkUpsert(ctx, s.c.sessions, models); err != nil {
		return fmt.Errorf("save sessions: %w", err)
	}
	return nil
}

// sessionUpdates are the updates that save g (see SaveSessions).
func sessionUpdates(g *store.Session) []mongo.WriteModel {
	id := sessionID(g.User, g.Device)
	subs := make([]subDoc, len(g.Subs))
	for i, sub := range g.Subs {
		subs[i] = subDoc{Filter: sub.Filter, QoS: int32(sub.QoS)}
	}
	set := bson.D{{Key: "user", Value: g.User}, {Key: "device", Value: g.Device}, {Key: "epoch", Value: g.Epoch},
		{Key: "subs", Value: subs}, {Key: "expiry", Value: int64(g.Expiry)}}
	maxes := make(bson.D, 0, 1+len(g.Groups))
	maxes = append(maxes, bson.E{Key: "inbox", Value: int64(g.Inbox)})
	for group, seq := range g.Groups {
		maxes = append(maxes, bson.E{Key: "groups." + groupField(group), Value: int64(seq)})
	}
	hold := bson.D{{Key: "holder", Value: g.Holder}, {Key: "disconnected", Value: g.Disconnected}}
	if g.Disconnected <= 0 {
		set = append(set, hold...)
		return []mongo.WriteModel{mongo.NewUpdateOneModel().SetFilter(byID(id)).SetUpsert(true).
			SetUpdate(bson.D{{Key: "$set", Value: set}, {Key: "$max", Value: maxes}})}
	}
	return []mongo.WriteModel{
		mongo.NewUpdateOneModel().SetFilter(byID(id)).SetUpsert(true).
			SetUpdate(bson.D{{Key: "$set", Value: set}, {Key: "$max", Value: maxes}, {Key: "$setOnInsert", Value: hold}}),
		mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: id}, {Key: "holder", Value: bson.D{{Key: "$in", Value: bson.A{g.Holder, ""}}}}}).
			SetUpdate(bson.D{{Key: "$set", Value: hold}}),
	}
}

// DeleteSession removes the session of user's device.
func (s *Store) DeleteSession(ctx context.Context, user, device string) error {
	if err := s.begin(ctx, "delete session"); err != nil {
		return err
	}
	defer s.end()
	if err := checkDevice(device); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	defer s.lockRMW(ctx)() // on FerretDB, not between an update's read and write
	if _, err := s.c.sessions.DeleteOne(ctx, byID(sessionID(user, device))); err != nil {
		return fmt.Errorf("delete session %s/%s: %w", user, device, err)
	}
	return nil
}

// DeleteSessions removes the sessions of ids with one DeleteMany.
func (s *Store) DeleteSessions(ctx context.Context, ids []store.SessionID) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.begin(ctx, "delete sessions"); err != nil {
		return err
	}
	defer s.end()
	keys := make(bson.A, len(ids))
	for i, id := range ids {
		if err := checkDevice(id.Device); err != nil {
			return fmt.Errorf("delete sessions: %w", err)
		}
		keys[i] = sessionID(id.User, id.Device)
	}
	defer s.lockRMW(ctx)()
	if _, err := s.c.sessions.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}}); err != nil {
		return fmt.Errorf("delete sessions: %w", err)
	}
	return nil
}

// CountUserSessions counts user's documents (the user field is indexed),
// up to limit.
func (s *Store) CountUserSessions(ctx context.Context, user string, limit int) (int, error) {
	if err := s.begin(ctx, "count user sessions"); err != nil {
		return 0, err
	}
	defer s.end()
	n, err := s.c.sessions.CountDocuments(ctx, bson.D{{Key: "user", Value: user}}, options.Count().SetLimit(int64(limit)))
	if err != nil {
		return 0, fmt.Errorf("count sessions of %s: %w", user, err)
	}
	return int(n), nil
}

// DeleteUserSessions removes every session of user, by the user field
// (indexed): an exact match, so no other user's, whatever its ID.
func (s *Store) DeleteUserSessions(ctx context.Context, user string) error {
	if err := s.begin(ctx, "delete user sessions"); err != nil {
		return err
	}
	defer s.end()
	defer s.lockRMW(ctx)()
	if _, err := s.c.sessions.DeleteMany(ctx, bson.D{{Key: "user", Value: user}}); err != nil {
		return fmt.Errorf("delete sessions of %s: %w", user, err)
	}
	return nil
}
