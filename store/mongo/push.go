package mongo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

// The push outbox (store.Push) in four collections (doc.go):
//
//	push_devices {_id: "{user}/{device}", user, device, provider, token,
//	              topic, sandbox, login, created, last_push}
//	push_jobs    {_id: msgid, created, until}
//	push_items   {_id: "{user}/{device}/{msgid}", user, device, msg,
//	              created, due, attempts, mention, done, done_at}
//	push_claims  {_id: "{key} {gen}", key, gen, holder, until}
//
// A device ID holds no '/' (checkDevice) and a message ID is digits, so
// both _ids are read from the right without ambiguity. The unique index
// on (provider, token) makes a token one device's however registrations
// race. Items are inserted by _id, a duplicate meaning "there already",
// so a job expanded twice adds nothing the first added.
//
// Claims must be exclusive on FerretDB too, whose updates are a read and
// a write, not atomic; its unique _id is. So a claim is never an update:
// each claim of a key (a job, "j {msgid}"; a device, "d {user}/{device}")
// inserts the key's next generation, {key, gen: latest+1}. Of claimers
// that saw the same latest, one insert wins, the others meet a duplicate.
// The winner then reads the key's claims again and holds the key only if
// its generation is still the highest (a claimer that read long ago, and
// inserted a generation since swept, loses here), and deletes the lower
// ones. The holder is the highest generation's, until its until; a
// release sets that until to the past (only the holder writes its own
// document). push_jobs.until is a hint, not the claim: the latest lease
// a claimer saw, so that ClaimPushJobs skips held jobs in the query
// rather than by a round trip; a stale hint only costs a look at the
// claim.

type pushDeviceDoc struct {
	ID       string `bson:"_id"`
	User     string `bson:"user"`
	Device   string `bson:"device"`
	Provider string `bson:"provider"`
	Token    string `bson:"token"`
	Topic    string `bson:"topic,omitempty"`
	Sandbox  bool   `bson:"sandbox,omitempty"`
	Login    string `bson:"login,omitempty"`
	Created  int64  `bson:"created"`
	LastPush int64  `bson:"last_push"`
}

func (d *pushDeviceDoc) device() store.PushDevice {
	return store.PushDevice{User: d.User, Device: d.Device, Provider: d.Provider, Token: d.Token, Topic: d.Topic,
		Sandbox: d.Sandbox, Login: d.Login, Created: d.Created, LastPush: d.LastPush}
}

type pushJobDoc struct {
	ID      int64 `bson:"_id"`
	Created int64 `bson:"created"`
	Until   int64 `bson:"until"`
}

type pushItemDoc struct {
	ID       string `bson:"_id"`
	User     string `bson:"user"`
	Device   string `bson:"device"`
	MsgID    int64  `bson:"msg"`
	Created  int64  `bson:"created"`
	Due      int64  `bson:"due"`
	Attempts int64  `bson:"attempts"`
	Mention  bool   `bson:"mention"`
	Done     bool   `bson:"done"`
	DoneAt   int64  `bson:"done_at"`
}

func (d *pushItemDoc) item() store.PushItem {
	return store.PushItem{User: d.User, Device: d.Device, MsgID: d.MsgID, Created: d.Created, Due: d.Due,
		Attempts: int(d.Attempts), Mention: d.Mention}
}

type pushClaimDoc struct {
	ID     string `bson:"_id"`
	Key    string `bson:"key"`
	Gen    int64  `bson:"gen"`
	Holder string `bson:"holder"`
	Until  int64  `bson:"until"`
}

// released is the until of a released claim: before any now.
const released = math.MinInt64

func pushItemID(user, device string, id int64) string {
	return user + "/" + device + "/" + strconv.FormatInt(id, 10)
}

func jobClaimKey(id int64) string               { return "j " + strconv.FormatInt(id, 10) }
func deviceClaimKey(user, device string) string { return "d " + sessionID(user, device) }

func checkPushDevice(d *store.PushDevice) error {
	if err := checkDevice(d.Device); err != nil {
		return err
	}
	if d.User == "" || d.Device == "" || d.Provider == "" || d.Token == "" {
		return fmt.Errorf("push registration without user, device, provider or token: %w", ErrInvalid)
	}
	return nil
}

// PutPushDevice registers d (store.Push). The token's holder is read
// first: another user's is ErrExists, a device of the same user loses
// its registration and items. The upsert then meets the unique (provider,
// token) index if another device took the token since: that is tried
// again, and is ErrExists if it stays so.
func (s *Store) PutPushDevice(ctx context.Context, d store.PushDevice) error {
	if err := s.begin(ctx, "put push device"); err != nil {
		return err
	}
	defer s.end()
	if err := checkPushDevice(&d); err != nil {
		return fmt.Errorf("put push device: %w", err)
	}
	defer s.lockRMW(ctx)()
	id := sessionID(d.User, d.Device)
	set := bson.D{{Key: "user", Value: d.User}, {Key: "device", Value: d.Device}, {Key: "provider", Value: d.Provider},
		{Key: "token", Value: d.Token}, {Key: "topic", Value: d.Topic}, {Key: "sandbox", Value: d.Sandbox},
		{Key: "login", Value: d.Login}, {Key: "created", Value: d.Created}}
	upd := bson.D{{Key: "$set", Value: set}, {Key: "$max", Value: bson.D{{Key: "last_push", Value: d.LastPush}}}}
	for try := 0; ; try++ {
		var holder pushDeviceDoc
		err := s.c.pushDevices.FindOne(ctx, bson.D{{Key: "provider", Value: d.Provider}, {Key: "token", Value: d.Token}}).Decode(&holder)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
		case err != nil:
			return fmt.Errorf("put push device %s/%s: find the token: %w", d.User, d.Device, err)
		case holder.User != d.User:
			return fmt.Errorf("put push device %s/%s: the token is another user's: %w", d.User, d.Device, store.ErrExists)
		case holder.Device != d.Device:
			// The same user's other device: it loses the token (the
			// app's device ID changed), and with it its registration.
			if err := s.deletePushDevice(ctx, byID(holder.ID), holder.User, holder.Device); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("put push device %s/%s: %w", d.User, d.Device, err)
			}
		}
		_, err = s.c.pushDevices.UpdateOne(ctx, byID(id), upd, options.UpdateOne().SetUpsert(true))
		switch {
		case err == nil:
			return nil
		case !isDup(err):
			return fmt.Errorf("put push device %s/%s: %w", d.User, d.Device, err)
		case try == dupRetries:
			return fmt.Errorf("put push device %s/%s: the token is taken: %w", d.User, d.Device, store.ErrExists)
		}
	}
}

// deletePushDevice deletes the registration filter finds, then (only if
// there was one: ErrNotFound) the items of user's device.
func (s *Store) deletePushDevice(ctx context.Context, filter bson.D, user, device string) error {
	res, err := s.c.pushDevices.DeleteOne(ctx, filter)
	if err != nil {
		return fmt.Errorf("delete push device %s/%s: %w", user, device, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete push device %s/%s: %w", user, device, store.ErrNotFound)
	}
	if _, err := s.c.pushItems.DeleteMany(ctx, bson.D{{Key: "user", Value: user}, {Key: "device", Value: device}}); err != nil {
		return fmt.Errorf("delete push items of %s/%s: %w", user, device, err)
	}
	return nil
}

// GetPushDevice reads a registration by _id.
func (s *Store) GetPushDevice(ctx context.Context, user, device string) (store.PushDevice, error) {
	if err := s.begin(ctx, "get push device"); err != nil {
		return store.PushDevice{}, err
	}
	defer s.end()
	if err := checkDevice(device); err != nil {
		return store.PushDevice{}, fmt.Errorf("get push device: %w", err)
	}
	var d pushDeviceDoc
	if err := s.c.pushDevices.FindOne(ctx, byID(sessionID(user, device))).Decode(&d); err != nil {
		return store.PushDevice{}, fmt.Errorf("get push device %s/%s: %w", user, device, notFound(err))
	}
	return d.device(), nil
}

// PushDevices reads users' registrations with one query on the {user,
// device} index.
func (s *Store) PushDevices(ctx context.Context, users []string) ([]store.PushDevice, error) {
	if err := s.begin(ctx, "push devices"); err != nil {
		return nil, err
	}
	defer s.end()
	if len(users) == 0 {
		return nil, nil
	}
	var docs []pushDeviceDoc
	opts := options.Find().SetSort(bson.D{{Key: "user", Value: 1}, {Key: "device", Value: 1}})
	if err := findAll(ctx, s.c.pushDevices, bson.D{{Key: "user", Value: bson.D{{Key: "$in", Value: users}}}}, opts, &docs); err != nil {
		return nil, fmt.Errorf("push devices: %w", err)
	}
	out := make([]store.PushDevice, len(docs))
	for i := range docs {
		out[i] = docs[i].device()
	}
	return out, nil
}

// DeletePushDevice deletes the registration (with token, only if it
// holds it: one filter, so a registration made since is not touched),
// then its items.
func (s *Store) DeletePushDevice(ctx context.Context, user, device, token string) error {
	if err := s.begin(ctx, "delete push device"); err != nil {
		return err
	}
	defer s.end()
	if err := checkDevice(device); err != nil {
		return fmt.Errorf("delete push device: %w", err)
	}
	filter := byID(sessionID(user, device))
	if token != "" {
		filter = append(filter, bson.E{Key: "token", Value: token})
	}
	defer s.lockRMW(ctx)()
	return s.deletePushDevice(ctx, filter, user, device)
}

// DeleteUserPushDevices deletes by the user field of both collections.
func (s *Store) DeleteUserPushDevices(ctx context.Context, user string) error {
	if err := s.begin(ctx, "delete user push devices"); err != nil {
		return err
	}
	defer s.end()
	defer s.lockRMW(ctx)()
	if _, err := s.c.pushDevices.DeleteMany(ctx, bson.D{{Key: "user", Value: user}}); err != nil {
		return fmt.Errorf("delete push devices of %s: %w", user, err)
	}
	if _, err := s.c.pushItems.DeleteMany(ctx, bson.D{{Key: "user", Value: user}}); err != nil {
		return fmt.Errorf("delete push items of %s: %w", user, err)
	}
	return nil
}

// SetLastPush sets last_push of the registration, if there is one.
func (s *Store) SetLastPush(ctx context.Context, user, device string, at int64) error {
	if err := s.begin(ctx, "set last push"); err != nil {
		return err
	}
	defer s.end()
	if err := checkDevice(device); err != nil {
		return fmt.Errorf("set last push: %w", err)
	}
	defer s.lockRMW(ctx)()
	_, err := s.c.pushDevices.UpdateOne(ctx, byID(sessionID(user, device)),
		bson.D{{Key: "$set", Value: bson.D{{Key: "last_push", Value: at}}}})
	if err != nil {
		return fmt.Errorf("set last push %s/%s: %w", user, device, err)
	}
	return nil
}

// insertPushJobs is Commit's step for Batch.PushJobs: an insert by _id,
// a job already there left as it is.
func (s *Store) insertPushJobs(ctx context.Context, jobs []store.PushJob) error {
	if len(jobs) == 0 {
		return nil
	}
	docs := make([]any, len(jobs))
	for i, j := range jobs {
		docs[i] = pushJobDoc{ID: j.MsgID, Created: j.Created, Until: released}
	}
	if _, err := insertMany(ctx, s.c.pushJobs, docs); err != nil {
		return fmt.Errorf("insert push jobs: %w", err)
	}
	return nil
}

// claimKeys claims keys for holder until until (see the top of the file)
// and reports which it now holds, which are held by others (until when),
// and the index in keys of the last one it looked at: it tries at most
// limit keys, so that it never holds more than the caller takes. A key
// held at now by another holder, or by holder too unless again, is not
// claimed.
func (s *Store) claimKeys(ctx context.Context, keys []string, holder string, now, until int64, again bool, limit int) (won map[string]bool, held map[string]int64, last int, err error) {
	latest, err := s.latestClaims(ctx, keys)
	if err != nil {
		return nil, nil, 0, err
	}
	if afterClaimRead != nil {
		afterClaimRead()
	}
	held = make(map[string]int64)
	var docs []any
	var mine []pushClaimDoc
	last = len(keys) - 1
	for i, k := range keys {
		c, ok := latest[k]
		if ok && c.Until > now && (c.Holder != holder || !again) {
			held[k] = c.Until
			continue
		}
		if len(mine) == limit {
			last = i - 1
			break
		}
		d := pushClaimDoc{Key: k, Gen: c.Gen + 1, Holder: holder, Until: until}
		d.ID = k + " " + strconv.FormatInt(d.Gen, 10)
		docs = append(docs, d)
		mine = append(mine, d)
	}
	dups, err := insertMany(ctx, s.c.pushClaims, docs)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("insert claims: %w", err)
	}
	var inserted []pushClaimDoc
	for i, d := range mine {
		if !dups[i] {
			inserted = append(inserted, d)
		}
	}
	if len(inserted) == 0 {
		return nil, held, last, nil
	}
	ks := make([]string, len(inserted))
	for i, d := range inserted {
		ks[i] = d.Key
	}
	after, err := s.latestClaims(ctx, ks)
	if err != nil {
		return nil, nil, 0, err
	}
	won = make(map[string]bool, len(inserted))
	var older bson.A // the winners' lower generations, and the losers' own
	for _, d := range inserted {
		if after[d.Key].Gen == d.Gen {
			won[d.Key] = true
			older = append(older, bson.D{{Key: "key", Value: d.Key}, {Key: "gen", Value: bson.D{{Key: "$lt", Value: d.Gen}}}})
		} else {
			older = append(older, byID(d.ID))
		}
	}
	// Best effort: a lower generation left is never the latest.
	if _, err := s.c.pushClaims.DeleteMany(ctx, bson.D{{Key: "$or", Value: older}}); err != nil {
		s.log.Warn("delete older push claims", "claims", len(older), "err", err)
	}
	return won, held, last, nil
}

// afterClaimRead, if set, runs between claimKeys' read of the latest
// claims and its insert (tests: a claimer that read long ago).
var afterClaimRead func()

// latestClaims reads the highest generation of each key's claims.
func (s *Store) latestClaims(ctx context.Context, keys []string) (map[string]pushClaimDoc, error) {
	var docs []pushClaimDoc
	if err := findAll(ctx, s.c.pushClaims, bson.D{{Key: "key", Value: bson.D{{Key: "$in", Value: keys}}}}, nil, &docs); err != nil {
		return nil, fmt.Errorf("read claims: %w", err)
	}
	latest := make(map[string]pushClaimDoc, len(keys))
	for _, d := range docs {
		if c, ok := latest[d.Key]; !ok || d.Gen > c.Gen {
			latest[d.Key] = d
		}
	}
	return latest, nil
}

// ClaimPushJobs walks the jobs by _id (message ID) whose until hint has
// passed, a page at a time, claiming (claimKeys) no more than it still
// needs, until it has n or there are no more; it moves the hint of each
// job it claimed or found held to that lease's end. Jobs are never
// released, only deleted, so a hint never hides a job whose lease has
// not ended.
func (s *Store) ClaimPushJobs(ctx context.Context, holder string, now, until int64, n int) ([]store.PushJob, error) {
	if err := s.begin(ctx, "claim push jobs"); err != nil {
		return nil, err
	}
	defer s.end()
	var out []store.PushJob
	after := int64(-1)
	for len(out) < n {
		var page []pushJobDoc
		filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}}, {Key: "until", Value: bson.D{{Key: "$lte", Value: now}}}}
		opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(2*(n-len(out)) + 8))
		if err := findAll(ctx, s.c.pushJobs, filter, opts, &page); err != nil {
			return nil, fmt.Errorf("claim push jobs: %w", err)
		}
		if len(page) == 0 {
			break
		}
		keys := make([]string, len(page))
		for i, j := range page {
			keys[i] = jobClaimKey(j.ID)
		}
		won, held, last, err := s.claimKeys(ctx, keys, holder, now, until, false, n-len(out))
		if err != nil {
			return nil, fmt.Errorf("claim push jobs: %w", err)
		}
		after = page[last].ID
		var hints []mongo.WriteModel
		for _, j := range page[:last+1] {
			k := jobClaimKey(j.ID)
			hint, isHeld := held[k]
			switch {
			case won[k]:
				out = append(out, store.PushJob{MsgID: j.ID, Created: j.Created})
				hint = until
			case !isHeld:
				continue
			}
			hints = append(hints, mongo.NewUpdateOneModel().SetFilter(byID(j.ID)).
				SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: hint}}}}))
		}
		// Hints only: a lost one costs a look at the claim.
		if err := s.bulkWrite(ctx, s.c.pushJobs, hints); err != nil {
			s.log.Warn("push job hints", "jobs", len(hints), "err", err)
		}
	}
	return out, nil
}

// releaseKeys ends holder's claims of keys.
func (s *Store) releaseKeys(ctx context.Context, keys []string, holder string) error {
	_, err := s.c.pushClaims.UpdateMany(ctx,
		bson.D{{Key: "key", Value: bson.D{{Key: "$in", Value: keys}}}, {Key: "holder", Value: holder}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: int64(released)}}}})
	if err != nil {
		return fmt.Errorf("release claims: %w", err)
	}
	return nil
}

// DeletePushJobs deletes the jobs and their claims.
func (s *Store) DeletePushJobs(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.begin(ctx, "delete push jobs"); err != nil {
		return err
	}
	defer s.end()
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = jobClaimKey(id)
	}
	if _, err := s.c.pushJobs.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}); err != nil {
		return fmt.Errorf("delete push jobs: %w", err)
	}
	if _, err := s.c.pushClaims.DeleteMany(ctx, bson.D{{Key: "key", Value: bson.D{{Key: "$in", Value: keys}}}}); err != nil {
		return fmt.Errorf("delete push job claims: %w", err)
	}
	return nil
}

// ExpandPushJobs (store.Push) reads which of the jobs holder holds, then
// inserts their items and deletes them: two writes, not one. A crash
// between leaves the job with its items, and the next holder's expansion
// adds nothing (an item there, pending or done, is left as it is: done
// items are kept until swept for that).
func (s *Store) ExpandPushJobs(ctx context.Context, holder string, now int64, ids []int64, items []store.PushItem) error {
	if len(ids) == 0 {
		return nil
	}
	held, err := s.heldJobs(ctx, holder, now, ids)
	if err != nil {
		return fmt.Errorf("expand push jobs: %w", err)
	}
	mine := items[:0:0]
	for _, it := range items {
		if held[it.MsgID] {
			mine = append(mine, it)
		}
	}
	if err := s.AddPushItems(ctx, mine); err != nil {
		return fmt.Errorf("expand push jobs: %w", err)
	}
	jobs := make([]int64, 0, len(held))
	for id := range held {
		jobs = append(jobs, id)
	}
	if err := s.DeletePushJobs(ctx, jobs); err != nil {
		return fmt.Errorf("expand push jobs: %w", err)
	}
	return nil
}

// heldJobs reads which of the jobs ids holder holds at now.
func (s *Store) heldJobs(ctx context.Context, holder string, now int64, ids []int64) (map[int64]bool, error) {
	if err := s.begin(ctx, "held push jobs"); err != nil {
		return nil, err
	}
	defer s.end()
	keys := make([]string, len(ids))
	byKey := make(map[string]int64, len(ids))
	for i, id := range ids {
		keys[i] = jobClaimKey(id)
		byKey[keys[i]] = id
	}
	var claims []struct {
		Key string `bson:"key"`
	}
	filter := bson.D{{Key: "key", Value: bson.D{{Key: "$in", Value: keys}}}, {Key: "holder", Value: holder},
		{Key: "until", Value: bson.D{{Key: "$gt", Value: now}}}}
	if err := findAll(ctx, s.c.pushClaims, filter, options.Find().SetProjection(bson.D{{Key: "key", Value: 1}}), &claims); err != nil {
		return nil, fmt.Errorf("read claims: %w", err)
	}
	held := make(map[int64]bool, len(claims))
	for _, c := range claims {
		if id, ok := byKey[c.Key]; ok {
			held[id] = true
		}
	}
	return held, nil
}

// AddPushItems inserts the items unordered by _id; a duplicate is one
// there already, pending or done, and is left as it is.
func (s *Store) AddPushItems(ctx context.Context, items []store.PushItem) error {
	if len(items) == 0 {
		return nil
	}
	if err := s.begin(ctx, "add push items"); err != nil {
		return err
	}
	defer s.end()
	docs := make([]any, len(items))
	for i := range items {
		it := &items[i]
		if err := checkDevice(it.Device); err != nil {
			return fmt.Errorf("add push items: %w", err)
		}
		docs[i] = pushItemDoc{ID: pushItemID(it.User, it.Device, it.MsgID), User: it.User, Device: it.Device, MsgID: it.MsgID,
			Created: it.Created, Due: it.Due, Attempts: int64(it.Attempts), Mention: it.Mention}
	}
	for len(docs) > 0 { // in commands of a bounded size: a message to a large group has many
		n := min(len(docs), 1000)
		if _, err := insertMany(ctx, s.c.pushItems, docs[:n]); err != nil {
			return fmt.Errorf("add push items: %w", err)
		}
		docs = docs[n:]
	}
	return nil
}

// duePage is how many due items DuePushDevices reads per look at claims.
const duePage = 256

// DuePushDevices reads the pending items due by now on the {done, due}
// index, earliest first, taking each device once and looking up the
// claims of each page's devices in one query.
func (s *Store) DuePushDevices(ctx context.Context, now int64, n int) ([]store.SessionID, error) {
	if err := s.begin(ctx, "due push devices"); err != nil {
		return nil, err
	}
	defer s.end()
	if n <= 0 {
		return nil, nil
	}
	filter := bson.D{{Key: "done", Value: false}, {Key: "due", Value: bson.D{{Key: "$lte", Value: now}}}}
	opts := options.Find().SetSort(bson.D{{Key: "due", Value: 1}}).
		SetProjection(bson.D{{Key: "user", Value: 1}, {Key: "device", Value: 1}}).SetBatchSize(duePage)
	cur, err := s.c.pushItems.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("due push devices: %w", err)
	}
	defer cur.Close(ctx)
	var out []store.SessionID
	seen := make(map[store.SessionID]bool)
	var page []store.SessionID
	flush := func() error {
		if len(page) == 0 {
			return nil
		}
		keys := make([]string, len(page))
		for i, id := range page {
			keys[i] = deviceClaimKey(id.User, id.Device)
		}
		latest, err := s.latestClaims(ctx, keys)
		if err != nil {
			return err
		}
		for i, id := range page {
			if len(out) < n && latest[keys[i]].Until <= now {
				out = append(out, id)
			}
		}
		page = page[:0]
		return nil
	}
	for len(out) < n && cur.Next(ctx) {
		var d struct {
			User   string `bson:"user"`
			Device string `bson:"device"`
		}
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("due push devices: %w", err)
		}
		id := store.SessionID{User: d.User, Device: d.Device}
		if seen[id] {
			continue
		}
		seen[id] = true
		if page = append(page, id); len(page) == duePage {
			if err := flush(); err != nil {
				return nil, fmt.Errorf("due push devices: %w", err)
			}
		}
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("due push devices: %w", err)
	}
	if err := flush(); err != nil {
		return nil, fmt.Errorf("due push devices: %w", err)
	}
	return out, nil
}

// ClaimPushDevice claims the device's key (claimKeys); a holder's claim
// again is a new generation too.
func (s *Store) ClaimPushDevice(ctx context.Context, user, device, holder string, now, until int64) (bool, error) {
	if err := s.begin(ctx, "claim push device"); err != nil {
		return false, err
	}
	defer s.end()
	k := deviceClaimKey(user, device)
	won, _, _, err := s.claimKeys(ctx, []string{k}, holder, now, until, true, 1)
	if err != nil {
		return false, fmt.Errorf("claim push device %s/%s: %w", user, device, err)
	}
	return won[k], nil
}

// ReleasePushDevice sets the until of holder's claims of the device to
// the past.
func (s *Store) ReleasePushDevice(ctx context.Context, user, device, holder string) error {
	if err := s.begin(ctx, "release push device"); err != nil {
		return err
	}
	defer s.end()
	if err := s.releaseKeys(ctx, []string{deviceClaimKey(user, device)}, holder); err != nil {
		return fmt.Errorf("release push device %s/%s: %w", user, device, err)
	}
	return nil
}

// PendingPushItems reads the device's pending items on the {user,
// device, msg} index.
func (s *Store) PendingPushItems(ctx context.Context, user, device string) ([]store.PushItem, error) {
	if err := s.begin(ctx, "pending push items"); err != nil {
		return nil, err
	}
	defer s.end()
	var docs []pushItemDoc
	filter := bson.D{{Key: "user", Value: user}, {Key: "device", Value: device}, {Key: "done", Value: false}}
	if err := findAll(ctx, s.c.pushItems, filter, options.Find().SetSort(bson.D{{Key: "msg", Value: 1}}), &docs); err != nil {
		return nil, fmt.Errorf("pending push items of %s/%s: %w", user, device, err)
	}
	out := make([]store.PushItem, len(docs))
	for i := range docs {
		out[i] = docs[i].item()
	}
	return out, nil
}

// updatePushItems applies upd to the device's pending items among ids,
// with one UpdateMany.
func (s *Store) updatePushItems(ctx context.Context, user, device string, ids []int64, upd bson.D) error {
	if len(ids) == 0 {
		return nil
	}
	keys := make(bson.A, len(ids))
	for i, id := range ids {
		keys[i] = pushItemID(user, device, id)
	}
	_, err := s.c.pushItems.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}, {Key: "done", Value: false}},
		bson.D{{Key: "$set", Value: upd}})
	return err
}

// DonePushItems marks the device's pending items among ids done.
func (s *Store) DonePushItems(ctx context.Context, user, device string, ids []int64, at int64) error {
	if err := s.begin(ctx, "done push items"); err != nil {
		return err
	}
	defer s.end()
	err := s.updatePushItems(ctx, user, device, ids, bson.D{{Key: "done", Value: true}, {Key: "done_at", Value: at}})
	if err != nil {
		return fmt.Errorf("done push items of %s/%s: %w", user, device, err)
	}
	return nil
}

// RetryPushItems sets Due and Attempts of the device's pending items.
func (s *Store) RetryPushItems(ctx context.Context, user, device string, ids []int64, due int64, attempts int) error {
	if err := s.begin(ctx, "retry push items"); err != nil {
		return err
	}
	defer s.end()
	err := s.updatePushItems(ctx, user, device, ids, bson.D{{Key: "due", Value: due}, {Key: "attempts", Value: int64(attempts)}})
	if err != nil {
		return fmt.Errorf("retry push items of %s/%s: %w", user, device, err)
	}
	return nil
}

// SweepPush deletes the done items on the {done, done_at} index and the
// claims on the {until} index.
func (s *Store) SweepPush(ctx context.Context, doneBefore int64) (int, error) {
	if err := s.begin(ctx, "sweep push"); err != nil {
		return 0, err
	}
	defer s.end()
	res, err := s.c.pushItems.DeleteMany(ctx, bson.D{{Key: "done", Value: true}, {Key: "done_at", Value: bson.D{{Key: "$lt", Value: doneBefore}}}})
	if err != nil {
		return 0, fmt.Errorf("sweep push items: %w", err)
	}
	if _, err := s.c.pushClaims.DeleteMany(ctx, bson.D{{Key: "until", Value: bson.D{{Key: "$lt", Value: doneBefore}}}}); err != nil {
		return int(res.DeletedCount), fmt.Errorf("sweep push claims: %w", err)
	}
	return int(res.DeletedCount), nil
}

// PushDepth counts the jobs and the pending items ({done, due} index).
func (s *Store) PushDepth(ctx context.Context) (jobs, items int64, err error) {
	if err := s.begin(ctx, "push depth"); err != nil {
		return 0, 0, err
	}
	defer s.end()
	if jobs, err = s.c.pushJobs.CountDocuments(ctx, bson.D{}); err != nil {
		return 0, 0, fmt.Errorf("push depth: %w", err)
	}
	if items, err = s.c.pushItems.CountDocuments(ctx, bson.D{{Key: "done", Value: false}}); err != nil {
		return 0, 0, fmt.Errorf("push depth: %w", err)
	}
	return jobs, items, nil
}
