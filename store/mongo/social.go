package mongo

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

// The social graph (store.Social, doc.go): contacts (one document per
// side), blocks and last_seen. A contact's two documents are written one
// after the other, each write idempotent, in an order that leaves a change
// cut short finishable by repeating it: the other side's document first,
// then the caller's, whose state decides what a repeat does.

// contactDoc is one side of a contact.
type contactDoc struct {
	ID    string `bson:"_id"`
	User  string `bson:"user"`
	Peer  string `bson:"peer"`
	State string `bson:"state"`
	Since int64  `bson:"since"`
}

// blockDoc is user's block of peer.
type blockDoc struct {
	ID    string `bson:"_id"`
	User  string `bson:"user"`
	Peer  string `bson:"peer"`
	Since int64  `bson:"since"`
}

// lastSeenDoc is when a user was last seen, _id the user.
type lastSeenDoc struct {
	User string `bson:"_id"`
	TS   int64  `bson:"ts"`
}

// pairID is the _id of user's row about peer: "{len(user)}:{user} {peer}".
func pairID(user, peer string) string { return strconv.Itoa(len(user)) + ":" + user + " " + peer }

func (d *contactDoc) row() store.Contact {
	return store.Contact{User: d.User, Peer: d.Peer, State: d.State, Since: d.Since}
}

func newContactDoc(user, peer, state string, since int64) contactDoc {
	return contactDoc{ID: pairID(user, peer), User: user, Peer: peer, State: state, Since: since}
}

// mirrorState is the other side's state of a contact in state.
func mirrorState(state string) string {
	switch state {
	case store.ContactPendingOut:
		return store.ContactPendingIn
	case store.ContactPendingIn:
		return store.ContactPendingOut
	}
	return state
}

func checkPair(user, peer string) error {
	if user == "" || peer == "" || user == peer {
		return fmt.Errorf("pair %q, %q: %w", user, peer, ErrInvalid)
	}
	return nil
}

// blockersScan: Blockers of more users than this asks who blocked peer
// first (by {peer: 1, user: 1}): mostly nobody, one short read for a
// group message's members.
const blockersScan = 16

// chunk is how many IDs one $in query carries.
const chunk = 500

func (s *Store) getContact(ctx context.Context, user, peer string) (store.Contact, error) {
	var d contactDoc
	if err := s.c.contacts.FindOne(ctx, byID(pairID(user, peer))).Decode(&d); err != nil {
		return store.Contact{}, notFound(err)
	}
	return d.row(), nil
}

// putContact replaces user's document about peer.
func (s *Store) putContact(ctx context.Context, d contactDoc) error {
	_, err := s.c.contacts.ReplaceOne(ctx, byID(d.ID), d, options.Replace().SetUpsert(true))
	if isDup(err) { // a concurrent first put of the same row: ours replaces it
		_, err = s.c.contacts.ReplaceOne(ctx, byID(d.ID), d, options.Replace().SetUpsert(true))
	}
	return err
}

// insertContact inserts d unless its _id is there; it reports whether it
// did.
func (s *Store) insertContact(ctx context.Context, d contactDoc) (bool, error) {
	_, err := s.c.contacts.InsertOne(ctx, d)
	if isDup(err) {
		return false, nil
	}
	return err == nil, err
}

// accept makes both sides accepted at ts, the peer's side first.
func (s *Store) accept(ctx context.Context, user, peer string, ts int64) (store.Contact, error) {
	if err := s.putContact(ctx, newContactDoc(peer, user, store.ContactAccepted, ts)); err != nil {
		return store.Contact{}, err
	}
	d := newContactDoc(user, peer, store.ContactAccepted, ts)
	if err := s.putContact(ctx, d); err != nil {
		return store.Contact{}, err
	}
	return d.row(), nil
}

// RequestContact inserts the asked one's pending_in side, then the
// asker's pending_out. An insert that finds its document already there
// tells a crossing request (each asked the other at once, from two
// nodes): it accepts.
func (s *Store) RequestContact(ctx context.Context, from, to string, ts int64) (store.Contact, error) {
	if err := s.begin(ctx, "request contact"); err != nil {
		return store.Contact{}, err
	}
	defer s.end()
	if err := checkPair(from, to); err != nil {
		return store.Contact{}, fmt.Errorf("request contact: %w", err)
	}
	defer s.lockRMW(ctx)()
	c, err := s.request(ctx, from, to, ts)
	if err != nil {
		return store.Contact{}, fmt.Errorf("request contact %s→%s: %w", from, to, err)
	}
	return c, nil
}

func (s *Store) request(ctx context.Context, from, to string, ts int64) (store.Contact, error) {
	c, err := s.getContact(ctx, from, to)
	switch {
	case err == nil && c.State == store.ContactPendingIn:
		return s.accept(ctx, from, to, ts)
	case err == nil:
		return c, nil // pending or accepted already
	case !errors.Is(err, store.ErrNotFound):
		return store.Contact{}, err
	}
	ok, err := s.insertContact(ctx, newContactDoc(to, from, store.ContactPendingIn, ts))
	if err != nil {
		return store.Contact{}, err
	}
	if !ok { // to's side is there: a crossing request, or one cut short
		theirs, err := s.getContact(ctx, to, from)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Contact{}, err
		}
		if err == nil && theirs.State != store.ContactPendingIn {
			return s.accept(ctx, from, to, ts)
		}
	}
	d := newContactDoc(from, to, store.ContactPendingOut, ts)
	if ok, err = s.insertContact(ctx, d); err != nil {
		return store.Contact{}, err
	}
	if !ok { // to asked from meanwhile: from's side is pending_in
		return s.accept(ctx, from, to, ts)
	}
	return d.row(), nil
}

// AcceptContact accepts the pending_in side of user.
func (s *Store) AcceptContact(ctx context.Context, user, peer string, ts int64) (store.Contact, error) {
	if err := s.begin(ctx, "accept contact"); err != nil {
		return store.Contact{}, err
	}
	defer s.end()
	if err := checkPair(user, peer); err != nil {
		return store.Contact{}, fmt.Errorf("accept contact: %w", err)
	}
	defer s.lockRMW(ctx)()
	c, err := s.getContact(ctx, user, peer)
	switch {
	case err == nil && c.State == store.ContactAccepted:
		return c, nil
	case err == nil && c.State == store.ContactPendingOut:
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Contact{}, fmt.Errorf("accept contact %s←%s: %w", user, peer, err)
	}
	if c, err = s.accept(ctx, user, peer, ts); err != nil {
		return store.Contact{}, fmt.Errorf("accept contact %s←%s: %w", user, peer, err)
	}
	return c, nil
}

// RemoveContact deletes the other side, then user's.
func (s *Store) RemoveContact(ctx context.Context, user, peer string) (store.Contact, error) {
	if err := s.begin(ctx, "remove contact"); err != nil {
		return store.Contact{}, err
	}
	defer s.end()
	if err := checkPair(user, peer); err != nil {
		return store.Contact{}, fmt.Errorf("remove contact: %w", err)
	}
	defer s.lockRMW(ctx)()
	c, err := s.getContact(ctx, user, peer)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Contact{}, fmt.Errorf("remove contact %s–%s: %w", user, peer, err)
	}
	// The other side goes even if user's is gone: a removal cut short
	// from the other side is finished from this one.
	if _, derr := s.c.contacts.DeleteOne(ctx, byID(pairID(peer, user))); derr != nil {
		return store.Contact{}, fmt.Errorf("remove contact %s–%s: %w", user, peer, derr)
	}
	if err != nil {
		return store.Contact{}, fmt.Errorf("remove contact %s–%s: %w", user, peer, err)
	}
	if _, err := s.c.contacts.DeleteOne(ctx, byID(pairID(user, peer))); err != nil {
		return store.Contact{}, fmt.Errorf("remove contact %s–%s: %w", user, peer, err)
	}
	return c, nil
}

// GetContact reads user's side by _id.
func (s *Store) GetContact(ctx context.Context, user, peer string) (store.Contact, error) {
	if err := s.begin(ctx, "get contact"); err != nil {
		return store.Contact{}, err
	}
	defer s.end()
	if err := checkPair(user, peer); err != nil {
		return store.Contact{}, fmt.Errorf("get contact: %w", err)
	}
	c, err := s.getContact(ctx, user, peer)
	if err != nil {
		return store.Contact{}, fmt.Errorf("get contact %s–%s: %w", user, peer, err)
	}
	return c, nil
}

// pairFilter selects user's rows after the peer after.
func pairFilter(user, after string) bson.D {
	f := bson.D{{Key: "user", Value: user}}
	if after != "" {
		f = append(f, bson.E{Key: "peer", Value: bson.D{{Key: "$gt", Value: after}}})
	}
	return f
}

// Contacts reads by {user: 1, peer: 1}, or {user: 1, state: 1, peer: 1}.
func (s *Store) Contacts(ctx context.Context, user, state, after string, limit int) ([]store.Contact, error) {
	if err := s.begin(ctx, "contacts"); err != nil {
		return nil, err
	}
	defer s.end()
	f := pairFilter(user, after)
	if state != "" {
		f = append(f, bson.E{Key: "state", Value: state})
	}
	opts := options.Find().SetSort(bson.D{{Key: "peer", Value: 1}}).SetLimit(int64(store.ClampLimit(limit, store.MaxSocialLimit)))
	cur, err := s.c.contacts.Find(ctx, f, opts)
	if err != nil {
		return nil, fmt.Errorf("contacts of %s: %w", user, err)
	}
	var docs []contactDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("contacts of %s: %w", user, err)
	}
	var out []store.Contact
	for i := range docs {
		out = append(out, docs[i].row())
	}
	return out, nil
}

func count(ctx context.Context, c *mongo.Collection, user string, most int) (int, error) {
	opts := options.Count()
	if most > 0 {
		opts.SetLimit(int64(most))
	}
	n, err := c.CountDocuments(ctx, bson.D{{Key: "user", Value: user}}, opts)
	return int(n), err
}

// CountContacts counts user's sides.
func (s *Store) CountContacts(ctx context.Context, user string, most int) (int, error) {
	if err := s.begin(ctx, "count contacts"); err != nil {
		return 0, err
	}
	defer s.end()
	n, err := count(ctx, s.c.contacts, user, most)
	if err != nil {
		return 0, fmt.Errorf("count contacts of %s: %w", user, err)
	}
	return n, nil
}

// PutBlock inserts the block unless it is there.
func (s *Store) PutBlock(ctx context.Context, b store.Block) error {
	if err := s.begin(ctx, "put block"); err != nil {
		return err
	}
	defer s.end()
	if err := checkPair(b.User, b.Peer); err != nil {
		return fmt.Errorf("put block: %w", err)
	}
	d := blockDoc{ID: pairID(b.User, b.Peer), User: b.User, Peer: b.Peer, Since: b.Since}
	if _, err := s.c.blocks.InsertOne(ctx, d); err != nil && !isDup(err) {
		return fmt.Errorf("put block %s→%s: %w", b.User, b.Peer, err)
	}
	return nil
}

// DeleteBlock deletes it by _id.
func (s *Store) DeleteBlock(ctx context.Context, user, peer string) error {
	if err := s.begin(ctx, "delete block"); err != nil {
		return err
	}
	defer s.end()
	if err := checkPair(user, peer); err != nil {
		return fmt.Errorf("delete block: %w", err)
	}
	if _, err := s.c.blocks.DeleteOne(ctx, byID(pairID(user, peer))); err != nil {
		return fmt.Errorf("delete block %s→%s: %w", user, peer, err)
	}
	return nil
}

// Blocks reads by {user: 1, peer: 1}.
func (s *Store) Blocks(ctx context.Context, user, after string, limit int) ([]store.Block, error) {
	if err := s.begin(ctx, "blocks"); err != nil {
		return nil, err
	}
	defer s.end()
	opts := options.Find().SetSort(bson.D{{Key: "peer", Value: 1}}).SetLimit(int64(store.ClampLimit(limit, store.MaxSocialLimit)))
	cur, err := s.c.blocks.Find(ctx, pairFilter(user, after), opts)
	if err != nil {
		return nil, fmt.Errorf("blocks of %s: %w", user, err)
	}
	var docs []blockDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("blocks of %s: %w", user, err)
	}
	var out []store.Block
	for _, d := range docs {
		out = append(out, store.Block{User: d.User, Peer: d.Peer, Since: d.Since})
	}
	return out, nil
}

// Blockers asks for the blocks' _ids, chunk at a time.
func (s *Store) Blockers(ctx context.Context, peer string, users []string) (map[string]bool, error) {
	if err := s.begin(ctx, "blockers"); err != nil {
		return nil, err
	}
	defer s.end()
	out := map[string]bool{}
	if len(users) > blockersScan { // who blocked peer, if no more than users asked
		cur, err := s.c.blocks.Find(ctx, bson.D{{Key: "peer", Value: peer}},
			options.Find().SetProjection(bson.D{{Key: "user", Value: 1}}).SetLimit(int64(len(users)+1)))
		if err != nil {
			return nil, fmt.Errorf("blockers of %s: %w", peer, err)
		}
		var docs []blockDoc
		if err := cur.All(ctx, &docs); err != nil {
			return nil, fmt.Errorf("blockers of %s: %w", peer, err)
		}
		if len(docs) <= len(users) {
			by := make(map[string]bool, len(docs))
			for _, d := range docs {
				by[d.User] = true
			}
			for _, u := range users {
				if by[u] {
					out[u] = true
				}
			}
			return out, nil
		}
	}
	ids := make([]string, 0, len(users))
	for _, u := range users {
		if u != "" && u != peer {
			ids = append(ids, pairID(u, peer))
		}
	}
	for len(ids) > 0 {
		n := min(len(ids), chunk)
		cur, err := s.c.blocks.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids[:n]}}}},
			options.Find().SetProjection(bson.D{{Key: "user", Value: 1}}))
		if err != nil {
			return nil, fmt.Errorf("blockers of %s: %w", peer, err)
		}
		var docs []blockDoc
		if err := cur.All(ctx, &docs); err != nil {
			return nil, fmt.Errorf("blockers of %s: %w", peer, err)
		}
		for _, d := range docs {
			out[d.User] = true
		}
		ids = ids[n:]
	}
	return out, nil
}

// CountBlocks counts user's blocks.
func (s *Store) CountBlocks(ctx context.Context, user string, most int) (int, error) {
	if err := s.begin(ctx, "count blocks"); err != nil {
		return 0, err
	}
	defer s.end()
	n, err := count(ctx, s.c.blocks, user, most)
	if err != nil {
		return 0, fmt.Errorf("count blocks of %s: %w", user, err)
	}
	return n, nil
}

// SetLastSeen replaces user's document.
func (s *Store) SetLastSeen(ctx context.Context, user string, ts int64) error {
	if err := s.begin(ctx, "set last seen"); err != nil {
		return err
	}
	defer s.end()
	if user == "" {
		return fmt.Errorf("set last seen: no user: %w", ErrInvalid)
	}
	d := lastSeenDoc{User: user, TS: ts}
	_, err := s.c.lastSeen.ReplaceOne(ctx, byID(user), d, options.Replace().SetUpsert(true))
	if isDup(err) {
		_, err = s.c.lastSeen.ReplaceOne(ctx, byID(user), d, options.Replace().SetUpsert(true))
	}
	if err != nil {
		return fmt.Errorf("set last seen of %s: %w", user, err)
	}
	return nil
}

// LastSeen asks for the users' documents, chunk at a time.
func (s *Store) LastSeen(ctx context.Context, users []string) (map[string]int64, error) {
	if err := s.begin(ctx, "last seen"); err != nil {
		return nil, err
	}
	defer s.end()
	out := make(map[string]int64, len(users))
	for len(users) > 0 {
		n := min(len(users), chunk)
		cur, err := s.c.lastSeen.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: users[:n]}}}})
		if err != nil {
			return nil, fmt.Errorf("last seen: %w", err)
		}
		var docs []lastSeenDoc
		if err := cur.All(ctx, &docs); err != nil {
			return nil, fmt.Errorf("last seen: %w", err)
		}
		for _, d := range docs {
			out[d.User] = d.TS
		}
		users = users[n:]
	}
	return out, nil
}

// DeleteUserSocial deletes up to limit of user's contacts (the other side
// first), then blocks, then its last seen.
func (s *Store) DeleteUserSocial(ctx context.Context, user string, limit int) (int, error) {
	if err := s.begin(ctx, "delete user social"); err != nil {
		return 0, err
	}
	defer s.end()
	if user == "" {
		return 0, fmt.Errorf("delete social rows: no user: %w", ErrInvalid)
	}
	limit = store.ClampLimit(limit, store.MaxSocialLimit)
	defer s.lockRMW(ctx)()
	fail := func(err error) (int, error) { return 0, fmt.Errorf("delete social rows of %s: %w", user, err) }
	n := 0
	for _, c := range []*mongo.Collection{s.c.contacts, s.c.blocks} {
		cur, err := c.Find(ctx, bson.D{{Key: "user", Value: user}},
			options.Find().SetProjection(bson.D{{Key: "peer", Value: 1}}).SetLimit(int64(limit-n)))
		if err != nil {
			return fail(err)
		}
		var docs []blockDoc
		if err := cur.All(ctx, &docs); err != nil {
			return fail(err)
		}
		if len(docs) == 0 {
			continue
		}
		ids, mirrors := make([]string, len(docs)), make([]string, len(docs))
		for i, d := range docs {
			ids[i], mirrors[i] = d.ID, pairID(d.Peer, user)
		}
		if c == s.c.contacts {
			if _, err := c.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: mirrors}}}}); err != nil {
				return fail(err)
			}
		}
		if _, err := c.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}); err != nil {
			return fail(err)
		}
		if n += len(docs); n >= limit {
			return n, nil
		}
	}
	res, err := s.c.lastSeen.DeleteOne(ctx, byID(user))
	if err != nil {
		return fail(err)
	}
	return n + int(res.DeletedCount), nil
}

// ImportContacts writes contact sides whole, by _id (store/migrate).
func (s *Store) ImportContacts(ctx context.Context, cs []store.Contact) error {
	models := make([]mongo.WriteModel, len(cs))
	for i, c := range cs {
		d := newContactDoc(c.User, c.Peer, c.State, c.Since)
		models[i] = mongo.NewReplaceOneModel().SetFilter(byID(d.ID)).SetReplacement(d).SetUpsert(true)
	}
	return s.importUpsert(ctx, "import contacts", s.c.contacts, models)
}

// ImportBlocks writes blocks whole, by _id (store/migrate).
func (s *Store) ImportBlocks(ctx context.Context, bs []store.Block) error {
	models := make([]mongo.WriteModel, len(bs))
	for i, b := range bs {
		d := blockDoc{ID: pairID(b.User, b.Peer), User: b.User, Peer: b.Peer, Since: b.Since}
		models[i] = mongo.NewReplaceOneModel().SetFilter(byID(d.ID)).SetReplacement(d).SetUpsert(true)
	}
	return s.importUpsert(ctx, "import blocks", s.c.blocks, models)
}

// LastSeenRow is a user's last seen time (store/migrate).
type LastSeenRow struct {
	User string
	TS   int64
}

// ImportLastSeen writes last seen times whole, by _id (store/migrate).
func (s *Store) ImportLastSeen(ctx context.Context, rows []LastSeenRow) error {
	models := make([]mongo.WriteModel, len(rows))
	for i, r := range rows {
		models[i] = mongo.NewReplaceOneModel().SetFilter(byID(r.User)).SetReplacement(lastSeenDoc(r)).SetUpsert(true)
	}
	return s.importUpsert(ctx, "import last seen", s.c.lastSeen, models)
}

// findIDs runs fn on the documents of c whose _id is in ids, chunk at a
// time.
func findIDs[T any](ctx context.Context, c *mongo.Collection, ids []string, fn func(d *T)) error {
	for len(ids) > 0 {
		n := min(len(ids), chunk)
		cur, err := c.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids[:n]}}}})
		if err != nil {
			return err
		}
		var docs []T
		if err := cur.All(ctx, &docs); err != nil {
			return err
		}
		for i := range docs {
			fn(&docs[i])
		}
		ids = ids[n:]
	}
	return nil
}

// Gates asks for the pairs' blocks and their users' settings by _id, then
// the contacts of the pairs whose user takes contacts only.
func (s *Store) Gates(ctx context.Context, pairs []store.Pair) (map[store.Pair]store.Gate, error) {
	if err := s.begin(ctx, "gates"); err != nil {
		return nil, err
	}
	defer s.end()
	out := make(map[store.Pair]store.Gate, len(pairs))
	var ids, users []string
	seen := map[string]bool{}
	for _, p := range pairs {
		if _, ok := out[p]; ok || checkPair(p.User, p.Peer) != nil {
			continue
		}
		out[p] = store.Gate{}
		ids = append(ids, pairID(p.User, p.Peer))
		if !seen[p.User] {
			seen[p.User] = true
			users = append(users, p.User)
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	err := findIDs(ctx, s.c.blocks, ids, func(d *blockDoc) {
		p := store.Pair{User: d.User, Peer: d.Peer}
		g := out[p]
		g.Blocked = true
		out[p] = g
	})
	if err != nil {
		return nil, fmt.Errorf("gates: blocks: %w", err)
	}
	only := map[string]bool{}
	if err := findIDs(ctx, s.c.userSettings, users, func(d *userSettingsDoc) {
		only[d.User] = d.AcceptFrom == store.AcceptContacts
	}); err != nil {
		return nil, fmt.Errorf("gates: settings: %w", err)
	}
	ids = ids[:0]
	for p, g := range out {
		if only[p.User] {
			g.ContactsOnly = true
			out[p] = g
			ids = append(ids, pairID(p.User, p.Peer))
		}
	}
	err = findIDs(ctx, s.c.contacts, ids, func(d *contactDoc) {
		p := store.Pair{User: d.User, Peer: d.Peer}
		g := out[p]
		g.Contact = d.State == store.ContactAccepted
		out[p] = g
	})
	if err != nil {
		return nil, fmt.Errorf("gates: contacts: %w", err)
	}
	return out, nil
}
