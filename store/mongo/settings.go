package mongo

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

// convSettingsDoc is one user's settings of one conversation (doc.go).
type convSettingsDoc struct {
	ID        string `bson:"_id"`
	User      string `bson:"user"`
	Conv      string `bson:"conv"`
	Mute      bool   `bson:"mute"`
	MuteUntil int64  `bson:"mute_until"`
	Pin       bool   `bson:"pin"`
	Updated   int64  `bson:"updated"`
}

// convSettingsID is the _id of user's row of conv: "{len(user)}:{user}
// {conv}". The length makes it unambiguous whatever the IDs hold.
func convSettingsID(user, conv string) string {
	return strconv.Itoa(len(user)) + ":" + user + " " + conv
}

func (d *convSettingsDoc) row() store.ConvSettings {
	return store.ConvSettings{User: d.User, Conv: d.Conv, Mute: d.Mute, MuteUntil: d.MuteUntil, Pin: d.Pin, Updated: d.Updated}
}

func toConvSettingsDoc(c *store.ConvSettings) convSettingsDoc {
	return convSettingsDoc{ID: convSettingsID(c.User, c.Conv), User: c.User, Conv: c.Conv, Mute: c.Mute,
		MuteUntil: c.MuteUntil, Pin: c.Pin, Updated: c.Updated}
}

// checkConv rejects a conversation name other than "u:{peer}" or
// "g:{group}" with a non-empty ID, and an empty user.
func checkConv(user, conv string) error {
	kind, id, ok := strings.Cut(conv, ":")
	if user == "" || !ok || kind != "u" && kind != "g" || id == "" {
		return fmt.Errorf("conversation settings of %q on %q: %w", user, conv, ErrInvalid)
	}
	return nil
}

// PutConvSettings replaces the row by _id, or deletes it if c sets nothing.
func (s *Store) PutConvSettings(ctx context.Context, c store.ConvSettings) error {
	if err := s.begin(ctx, "put conversation settings"); err != nil {
		return err
	}
	defer s.end()
	if err := checkConv(c.User, c.Conv); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	id := convSettingsID(c.User, c.Conv)
	if c.Zero() {
		if _, err := s.c.convSettings.DeleteOne(ctx, byID(id)); err != nil {
			return fmt.Errorf("delete conversation settings of %s on %s: %w", c.User, c.Conv, err)
		}
		return nil
	}
	d := toConvSettingsDoc(&c)
	_, err := s.c.convSettings.ReplaceOne(ctx, byID(id), d, options.Replace().SetUpsert(true))
	if isDup(err) { // a concurrent first put of the same row: ours replaces it
		_, err = s.c.convSettings.ReplaceOne(ctx, byID(id), d, options.Replace().SetUpsert(true))
	}
	if err != nil {
		return fmt.Errorf("put conversation settings of %s on %s: %w", c.User, c.Conv, err)
	}
	return nil
}

// GetConvSettings reads one row by _id.
func (s *Store) GetConvSettings(ctx context.Context, user, conv string) (store.ConvSettings, error) {
	if err := s.begin(ctx, "get conversation settings"); err != nil {
		return store.ConvSettings{}, err
	}
	defer s.end()
	if err := checkConv(user, conv); err != nil {
		return store.ConvSettings{}, fmt.Errorf("get: %w", err)
	}
	var d convSettingsDoc
	if err := s.c.convSettings.FindOne(ctx, byID(convSettingsID(user, conv))).Decode(&d); err != nil {
		return store.ConvSettings{}, fmt.Errorf("get conversation settings of %s on %s: %w", user, conv, notFound(err))
	}
	return d.row(), nil
}

// UserConvSettings reads user's rows by the {user: 1, conv: 1} index.
func (s *Store) UserConvSettings(ctx context.Context, user string) ([]store.ConvSettings, error) {
	if err := s.begin(ctx, "user conversation settings"); err != nil {
		return nil, err
	}
	defer s.end()
	out, err := s.findConvSettings(ctx, bson.D{{Key: "user", Value: user}}, "conv")
	if err != nil {
		return nil, fmt.Errorf("conversation settings of %s: %w", user, err)
	}
	return out, nil
}

// ConvSettingsFor reads conv's rows by the {conv: 1, user: 1} index.
func (s *Store) ConvSettingsFor(ctx context.Context, conv string) ([]store.ConvSettings, error) {
	if err := s.begin(ctx, "conversation settings for"); err != nil {
		return nil, err
	}
	defer s.end()
	out, err := s.findConvSettings(ctx, bson.D{{Key: "conv", Value: conv}}, "user")
	if err != nil {
		return nil, fmt.Errorf("conversation settings of %s: %w", conv, err)
	}
	return out, nil
}

func (s *Store) findConvSettings(ctx context.Context, filter bson.D, sortBy string) ([]store.ConvSettings, error) {
	cur, err := s.c.convSettings.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: sortBy, Value: 1}}))
	if err != nil {
		return nil, err
	}
	var docs []convSettingsDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	var out []store.ConvSettings
	if len(docs) > 0 {
		out = make([]store.ConvSettings, len(docs))
		for i := range docs {
			out[i] = docs[i].row()
		}
	}
	return out, nil
}

// DeleteUserConvSettings removes user's rows, by the user field.
func (s *Store) DeleteUserConvSettings(ctx context.Context, user string) error {
	if err := s.begin(ctx, "delete user conversation settings"); err != nil {
		return err
	}
	defer s.end()
	if _, err := s.c.convSettings.DeleteMany(ctx, bson.D{{Key: "user", Value: user}}); err != nil {
		return fmt.Errorf("delete conversation settings of %s: %w", user, err)
	}
	return nil
}

// ImportConvSettings writes rows whole, by _id (store/migrate).
func (s *Store) ImportConvSettings(ctx context.Context, cs []store.ConvSettings) error {
	models := make([]mongo.WriteModel, 0, len(cs))
	for i := range cs {
		if err := checkConv(cs[i].User, cs[i].Conv); err != nil {
			return fmt.Errorf("import: %w", err)
		}
		d := toConvSettingsDoc(&cs[i])
		models = append(models, mongo.NewReplaceOneModel().SetFilter(byID(d.ID)).SetReplacement(d).SetUpsert(true))
	}
	return s.importUpsert(ctx, "import conversation settings", s.c.convSettings, models)
}
