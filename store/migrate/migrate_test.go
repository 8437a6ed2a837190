package migrate_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/imqtt/imqtt/internal/bans"
	"github.com/imqtt/imqtt/internal/bans/mongorows"
	"github.com/imqtt/imqtt/internal/media"
	"github.com/imqtt/imqtt/internal/media/gridfs"
	"github.com/imqtt/imqtt/internal/mongotest"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/migrate"
	"github.com/imqtt/imqtt/store/mongo"
	"github.com/imqtt/imqtt/store/pebble"
)

// uri is a tools/devmongo process started by TestMain (internal/mongotest),
// or the MongoDB at IMQTT_TEST_MONGO_URI.
var uri string

func TestMain(m *testing.M) {
	os.Exit(mongotest.Shared(m, func(u string, _ bool) { uri = u }))
}

var (
	dbSeq atomic.Int64
	runID = rand.Text()[:6]
)

func openDst(t testing.TB, db string) *mongo.Store {
	t.Helper()
	s, err := mongo.Open(t.Context(), uri, mongo.Options{Database: db})
	if err != nil {
		t.Fatalf("open mongo: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newDst(t testing.TB) (*mongo.Store, string) {
	db := fmt.Sprintf("m%s%d", runID, dbSeq.Add(1))
	return openDst(t, db), db
}

// source is a data directory with a filled embedded store, media and bans.
type source struct {
	dir     string
	media   string // the uploaded object
	users   []string
	groups  []string
	version map[string]uint64 // next free version of each reserved key
}

// newSource fills a store: users chatting 1:1, groups with messages, read
// positions, tokens, a grant, a media object and a ban.
func newSource(t testing.TB, users, msgs int) *source {
	t.Helper()
	ctx := t.Context()
	src := &source{dir: t.TempDir(), version: map[string]uint64{}}
	st, err := pebble.Open(filepath.Join(src.dir, "pebble"), pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range users {
		id := fmt.Sprintf("user%02d", i)
		src.users = append(src.users, id)
		if err := st.CreateUser(ctx, store.User{ID: id, Display: "U " + id, PasswordHash: "h", Created: 1000 + int64(i)}); err != nil {
			t.Fatal(err)
		}
		if err := st.PutToken(ctx, store.Token{Hash: fmt.Sprintf("%064x", i), User: id, Device: "d", Expires: 9e12, Created: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// A deleted user's tombstone, which GetUser does not return: it is
	// copied and verified as a tombstone.
	if err := st.CreateUser(ctx, store.User{ID: "gone", PasswordHash: "h", Created: 1}); err != nil {
		t.Fatal(err)
	}
	if err := st.TombstoneUser(ctx, "gone", 77); err != nil {
		t.Fatal(err)
	}
	reserve := func(key string) uint64 {
		v, err := st.ReserveVersions(ctx, key, 1)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	id := int64(1 << 40)
	for i := range msgs {
		id++
		from, to := src.users[i%users], src.users[(i*7+1)%users]
		if from == to {
			to = src.users[(i+1)%users]
		}
		vf, vt := reserve(from), reserve(to)
		m := store.Message{ID: id, From: from, To: to, Type: "text", Body: fmt.Sprintf("hello %d", i), CMID: fmt.Sprint("c", i), TS: id >> 10}
		if i%5 == 0 {
			m.Meta = []byte(`{"k": [1, 2]}`)
		}
		if i%11 == 0 {
			m.Inline = &store.Inline{Type: "image/png", Data: []byte{1, 2, 3}}
		}
		b := &store.Batch{
			Messages: []store.Message{m},
			Entries:  []store.Entry{{User: from, Ver: vf, Peer: to, Out: true, MsgID: id}, {User: to, Ver: vt, Peer: from, MsgID: id}},
			Convs: []store.ConvUpdate{{User: from, Peer: to, MsgID: id, TS: m.TS, Ver: vf},
				{User: to, Peer: from, MsgID: id, TS: m.TS, Ver: vt, Incoming: true}},
			Acks: []store.Ack{{From: from, CMID: m.CMID, ID: id, Ver: vf, TS: m.TS}},
		}
		if i%3 == 0 {
			b.PushJobs = []store.PushJob{{MsgID: id, Created: m.TS}}
		}
		if i%4 == 0 {
			b.Webhooks = []store.WebhookEvent{{ID: id, Lane: "c:" + from + ":" + to, Type: "message.after_send", TS: m.TS,
				Data: []byte(`{"id":"` + fmt.Sprint(id) + `"}`), MsgID: id}}
		}
		if err := st.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
		if i%9 == 0 {
			if _, err := st.SetRead(ctx, to, from, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	for g := range 3 {
		gid := fmt.Sprintf("g-%d", g)
		src.groups = append(src.groups, gid)
		var ms []store.Member
		for _, u := range src.users[:min(len(src.users), 3+g)] {
			ms = append(ms, store.Member{User: u, Role: store.RoleMember, Joined: 5})
		}
		ms[0].Role = store.RoleOwner
		if err := st.CreateGroup(ctx, store.Group{ID: gid, Name: "G" + gid, Owner: ms[0].User, Created: 5}, ms); err != nil {
			t.Fatal(err)
		}
		first := id + 1
		for s := range 4 + g {
			id++
			seq := reserve("g/" + gid)
			from := ms[s%len(ms)].User
			m := store.Message{ID: id, From: from, Group: gid, Seq: seq, Type: "text", Body: "hi all", CMID: fmt.Sprint("gc", id), TS: id >> 10}
			b := &store.Batch{Messages: []store.Message{m}, Heads: []store.GroupHead{{Group: gid, Seq: seq, MsgID: id, TS: m.TS}},
				Acks:  []store.Ack{{From: from, CMID: m.CMID, ID: id, Group: gid, Seq: seq, TS: m.TS}},
				Reads: []store.GroupRead{{Group: gid, User: from, Seq: seq}}}
			if err := st.Commit(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		// A reaction to the group's first message (a change record with
		// its seq), and that message hidden by the owner.
		id++
		seq := reserve("g/" + gid)
		rec := store.Message{ID: id, From: ms[1].User, Group: gid, Seq: seq, CMID: fmt.Sprint("gr", id), TS: id >> 10,
			Change: &store.Change{Kind: store.ChangeReaction, Target: first, Emoji: "👍", Add: true, Count: 1}}
		if err := st.Commit(ctx, &store.Batch{Messages: []store.Message{rec},
			Heads:     []store.GroupHead{{Group: gid, Seq: seq, Changes: 1}},
			Acks:      []store.Ack{{From: rec.From, CMID: rec.CMID, ID: id, Group: gid, Seq: seq, TS: rec.TS}},
			Reactions: []store.Reaction{{MsgID: first, User: rec.From, Emoji: "👍", Add: true, TS: rec.TS}},
			Hides:     []store.Hide{{User: ms[0].User, MsgID: first, Group: gid}}}); err != nil {
			t.Fatal(err)
		}
	}
	for i, u := range src.users {
		if err := st.PutUserSettings(ctx, store.UserSettings{User: u, NoReadReceipts: i%2 == 0, Updated: 3}); err != nil {
			t.Fatal(err)
		}
	}
	// The social graph: a contact, a block and a last seen per user.
	for i, u := range src.users {
		peer := src.users[(i+1)%len(src.users)]
		if _, err := st.RequestContact(ctx, u, peer, 5); err != nil {
			t.Fatal(err)
		}
		if err := st.PutBlock(ctx, store.Block{User: u, Peer: "spam", Since: 6}); err != nil {
			t.Fatal(err)
		}
		if err := st.SetLastSeen(ctx, u, int64(7+i)); err != nil {
			t.Fatal(err)
		}
	}
	// A persistent session per user, one released, with group positions.
	for i, u := range src.users {
		ss := store.Session{User: u, Device: "iot", Epoch: st.Epoch(), Inbox: uint64(i + 1),
			Groups: map[string]uint64{src.groups[0]: 1, src.groups[2]: uint64(i)},
			Subs:   []store.SessionSub{{Filter: "im/u/" + u + "/inbox", QoS: 1}}, Expiry: 3600, Holder: "n/1"}
		if i == 0 {
			ss.Disconnected = 1234
		}
		if err := st.SaveSessions(ctx, []store.Session{ss}); err != nil {
			t.Fatal(err)
		}
		// Settings of a conversation (their keys, cs/ and cr/, sit next
		// to the conversations' c/: counted apart).
		cs := store.ConvSettings{User: u, Conv: store.ConvGroup(src.groups[0]), Mute: true, Pin: i%2 == 0, Updated: 1}
		if err := st.PutConvSettings(ctx, cs); err != nil {
			t.Fatal(err)
		}
	}
	// A push registration per user, a pending and a done push item.
	for i, u := range src.users {
		d := store.PushDevice{User: u, Device: "phone", Provider: "fcm", Token: "tok-" + u, Created: 9, LastPush: int64(i)}
		if err := st.PutPushDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		items := []store.PushItem{{User: u, Device: "phone", MsgID: 1, Created: 9, Due: 10, Attempts: 2, Mention: true},
			{User: u, Device: "phone", MsgID: 2, Created: 9, Due: 11}}
		if err := st.AddPushItems(ctx, items); err != nil {
			t.Fatal(err)
		}
		if err := st.DonePushItems(ctx, u, "phone", []int64{2}, 12); err != nil {
			t.Fatal(err)
		}
	}
	// A media object with a grant.
	fs, err := media.OpenFS(filepath.Join(src.dir, "media"))
	if err != nil {
		t.Fatal(err)
	}
	src.media = media.NewID()
	stg, err := fs.Create(ctx, src.media)
	if err != nil {
		t.Fatal(err)
	}
	w, err := stg.Create(media.PartData)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("the bytes of an upload"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := stg.Commit(ctx, media.Info{ID: src.media, Owner: src.users[0], Size: 22, Type: "text/plain", Created: 7}); err != nil {
		t.Fatal(err)
	}
	id++
	if err := st.Commit(ctx, &store.Batch{Grants: []store.Grant{{Media: src.media, Principal: src.users[1]}}}); err != nil {
		t.Fatal(err)
	}
	bl, err := bans.Open(filepath.Join(src.dir, "admin", "bans.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bl.Add(ctx, bans.Ban{User: "spammer", Reason: "spam"}); err != nil {
		t.Fatal(err)
	}
	return src
}

func (s *source) open(t testing.TB) *pebble.Store {
	t.Helper()
	st, err := pebble.OpenReadOnly(filepath.Join(s.dir, "pebble"), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestRunCopiesEverything(t *testing.T) {
	src := newSource(t, 6, 120)
	from := src.open(t)
	dst, db := newDst(t)
	sum, err := migrate.Run(t.Context(), from, dst, migrate.Options{DataDir: src.dir, Sample: 1, Batch: 40})
	if err != nil {
		t.Fatalf("run: %v (summary %+v)", err, sum)
	}
	if sum.Messages == 0 || sum.Media != 1 || sum.Bans != 1 || sum.Sampled == 0 {
		t.Fatalf("summary %+v", sum)
	}
	for _, k := range sum.Kinds {
		if k.Source != k.Target || k.Source == 0 {
			t.Errorf("%s: source %d, target %d", k.Kind, k.Source, k.Target)
		}
	}
	ctx := t.Context()
	if at, err := dst.UserTombstone(ctx, "gone"); err != nil || at != 77 {
		t.Errorf("the tombstone copied: %d, %v", at, err)
	}
	// Reopened, the database has the source's epoch.
	again := openDst(t, db)
	if again.Epoch() != from.Epoch() {
		t.Fatalf("epoch %q, want the source's %q", again.Epoch(), from.Epoch())
	}
	// Versions and group seqs continue where the source's stopped.
	if v, err := from.ReserveVersions(ctx, src.users[0], 1); err == nil {
		t.Fatalf("the read-only source reserved version %d", v)
	}
	h, err := from.Head(ctx, src.users[0])
	if err != nil {
		t.Fatal(err)
	}
	v, err := again.ReserveVersions(ctx, src.users[0], 1)
	if err != nil || v <= h {
		t.Fatalf("next version %d (%v), want above the source's head %d", v, err, h)
	}
	gh, _ := from.GroupHead(ctx, src.groups[2])
	seq, err := again.ReserveVersions(ctx, "g/"+src.groups[2], 1)
	if err != nil || seq <= gh.Seq {
		t.Fatalf("next seq %d (%v), want above the source's head %d", seq, err, gh.Seq)
	}
	// Media and bans.
	blobs, err := gridfs.New(again.Database(), gridfs.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := blobs.Open(ctx, src.media, media.PartData)
	if err != nil {
		t.Fatalf("media in GridFS: %v", err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if string(data) != "the bytes of an upload" {
		t.Fatalf("media bytes %q", data)
	}
	bl, err := mongorows.New(again.Database()).LoadBans(ctx)
	if err != nil || len(bl) != 1 || bl[0].User != "spammer" {
		t.Fatalf("bans %+v %v", bl, err)
	}
	// Persistent sessions, with their positions.
	for _, u := range src.users {
		want, err := from.LoadSession(ctx, u, "iot")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := again.LoadSession(ctx, u, "iot"); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("session of %s: %+v %v; want %+v", u, got, err, want)
		}
	}
	// Conversation settings.
	for _, u := range src.users {
		want, err := from.UserConvSettings(ctx, u)
		if err != nil || len(want) != 1 {
			t.Fatalf("source settings of %s: %+v %v", u, want, err)
		}
		if got, err := again.UserConvSettings(ctx, u); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("settings of %s: %+v %v; want %+v", u, got, err, want)
		}
	}
	// Push registrations, pending items and jobs; a done item stays done.
	wantDevs, err := from.PushDevices(ctx, src.users)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.PushDevices(ctx, src.users); err != nil || len(wantDevs) != len(src.users) || !reflect.DeepEqual(got, wantDevs) {
		t.Errorf("push devices: %+v %v; want %+v", got, err, wantDevs)
	}
	for _, u := range src.users {
		want, _ := from.PendingPushItems(ctx, u, "phone")
		if got, err := again.PendingPushItems(ctx, u, "phone"); err != nil || len(want) != 1 || !reflect.DeepEqual(got, want) {
			t.Errorf("pending push items of %s: %+v %v; want %+v", u, got, err, want)
		}
	}
	if err := again.AddPushItems(ctx, []store.PushItem{{User: src.users[0], Device: "phone", MsgID: 2, Due: 1}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := again.PendingPushItems(ctx, src.users[0], "phone"); len(got) != 1 {
		t.Errorf("a done push item came over pending: %+v", got)
	}
	wantJobs, _, _ := from.PushDepth(ctx)
	if jobs, err := again.ClaimPushJobs(ctx, "n1", 0, 1, 1000); err != nil || wantJobs == 0 || int64(len(jobs)) != wantJobs {
		t.Errorf("push jobs claimable: %d %v; want %d", len(jobs), err, wantJobs)
	}
	wantEvents, _ := from.WebhookDepth(ctx)
	if n, err := again.WebhookDepth(ctx); err != nil || wantEvents == 0 || n != wantEvents {
		t.Errorf("webhook events: %d %v; want %d", n, err, wantEvents)
	}
	if lanes, err := again.DueWebhookLanes(ctx, 1<<62, 1000); err != nil || len(lanes) == 0 {
		t.Errorf("webhook lanes due: %v %v", lanes, err)
	} else if evs, err := again.WebhookEvents(ctx, lanes[0].Lane, 10); err != nil || len(evs) == 0 || evs[0].Type != "message.after_send" || len(evs[0].Data) == 0 {
		t.Errorf("webhook events of %s: %+v %v", lanes[0].Lane, evs, err)
	}
	// Unread counts came over as they were, and a new message counts on.
	convs, _ := from.Conversations(ctx, src.users[1])
	got, _ := again.Conversations(ctx, src.users[1])
	if len(convs) == 0 || len(got) != len(convs) {
		t.Fatalf("conversations %d, want %d", len(got), len(convs))
	}
}

// TestRefusesForeignDatabase: a database with data and no marker, or with
// another store's marker, is refused, and left as it was.
func TestRefusesForeignDatabase(t *testing.T) {
	src := newSource(t, 3, 10)
	from := src.open(t)
	ctx := t.Context()

	dst, _ := newDst(t)
	if err := dst.CreateUser(ctx, store.User{ID: "someone", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	_, err := migrate.Run(ctx, from, dst, migrate.Options{})
	if !errors.Is(err, migrate.ErrNotEmpty) || !strings.Contains(err.Error(), "users") {
		t.Fatalf("err %v, want ErrNotEmpty naming users", err)
	}
	if n, _ := dst.CountRows(ctx, "users"); n != 1 {
		t.Fatalf("users %d after a refused run", n)
	}
	if n, _ := dst.Database().Collection("meta").CountDocuments(ctx, bson.D{{Key: "_id", Value: "migration"}}); n != 0 {
		t.Fatal("a refused run left a marker")
	}

	// Another source's marker.
	other := newSource(t, 2, 2)
	dst2, _ := newDst(t)
	if _, err := migrate.Run(ctx, other.open(t), dst2, migrate.Options{Sample: -1}); err != nil {
		t.Fatal(err)
	}
	_, err = migrate.Run(ctx, from, dst2, migrate.Options{})
	if !errors.Is(err, migrate.ErrOtherSource) {
		t.Fatalf("err %v, want ErrOtherSource", err)
	}
	if n, _ := dst2.CountRows(ctx, "users"); n != 3 { // 2 and the tombstone
		t.Fatalf("users %d, want the first source's 3", n)
	}
}

// TestResumeAfterKill cancels a run half-way (from its Progress callback),
// runs again: the copy completes from the saved position, with every count
// equal to the source's and no row written twice.
func TestResumeAfterKill(t *testing.T) {
	src := newSource(t, 5, 150)
	from := src.open(t)
	dst, _ := newDst(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var seen int64
	opts := migrate.Options{Batch: 25, DataDir: src.dir, Sample: 3, Progress: func(p migrate.Progress) {
		if p.Kind == "inbox" && p.Done >= 100 {
			cancel()
		}
		seen++
	}}
	first, err := migrate.Run(ctx, from, dst, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v, want canceled", err)
	}
	// As if killed between a write and the save of its position: the
	// inbox's rows written so far are written again.
	meta := dst.Database().Collection("meta")
	if _, err := meta.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: "migration"}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "positions.inbox", Value: ""}}}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := dst.CountRows(t.Context(), "entries"); n < 100 {
		t.Fatalf("%d entries before the second run, want the first's 100 or more", n)
	}
	if err := migrate.Unfinished(t.Context(), dst.Database()); !errors.Is(err, migrate.ErrUnfinished) {
		t.Fatalf("Unfinished after a killed run: %v", err)
	}
	opts.Progress = nil
	second, err := migrate.Run(t.Context(), from, dst, opts)
	if err != nil {
		t.Fatalf("second run: %v (%+v)", err, second.Mismatches)
	}
	var total int64
	for _, k := range second.Kinds {
		total += k.Source
		if k.Source != k.Target {
			t.Errorf("%s: source %d, target %d", k.Kind, k.Source, k.Target)
		}
	}
	// The second run did not start over: it wrote what the first had not,
	// and the inbox rows again, found already there.
	if second.Copied >= total || first.Copied+second.Copied < total+100 {
		t.Fatalf("copied %d then %d of %d rows", first.Copied, second.Copied, total)
	}
	if second.MediaSkip != 0 || second.Media != 1 {
		t.Fatalf("media %d skipped %d", second.Media, second.MediaSkip)
	}
	if err := migrate.Unfinished(t.Context(), dst.Database()); err != nil {
		t.Fatalf("Unfinished after the run finished: %v", err)
	}
}

// TestVerifyFindsMismatch: a target row changed after the copy is found by
// the verification of a later run.
func TestVerifyFindsMismatch(t *testing.T) {
	src := newSource(t, 3, 30)
	from := src.open(t)
	dst, _ := newDst(t)
	if _, err := migrate.Run(t.Context(), from, dst, migrate.Options{Sample: 1}); err != nil {
		t.Fatal(err)
	}
	msgs := dst.Database().Collection("messages")
	var doc bson.M
	if err := msgs.FindOne(t.Context(), bson.D{}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if _, err := msgs.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: doc["_id"]}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "body", Value: "tampered"}}}}); err != nil {
		t.Fatal(err)
	}
	sum, err := migrate.Run(t.Context(), from, dst, migrate.Options{Sample: 1})
	if !errors.Is(err, migrate.ErrMismatch) || len(sum.Mismatches) == 0 {
		t.Fatalf("err %v mismatches %v, want ErrMismatch", err, sum.Mismatches)
	}
	if strings.Contains(err.Error(), "tampered") {
		t.Fatal("the error carries a message body")
	}
	// A missing row is found by the counts.
	if _, err := dst.Database().Collection("entries").DeleteOne(t.Context(), bson.D{}); err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Run(t.Context(), from, dst, migrate.Options{Sample: -1}); !errors.Is(err, migrate.ErrMismatch) ||
		!strings.Contains(err.Error(), "inbox") {
		t.Fatalf("err %v, want a count mismatch of inbox", err)
	}
}

// TestRate: the copy keeps to Options.Rate.
func TestRate(t *testing.T) {
	src := newSource(t, 2, 100) // over 400 rows
	from := src.open(t)
	dst, _ := newDst(t)
	const rows = 200.0
	start := time.Now()
	sum, err := migrate.Run(t.Context(), from, dst, migrate.Options{Rate: rows, Sample: -1})
	if err != nil {
		t.Fatal(err)
	}
	// The first batch (one second's worth) goes at once.
	if min := time.Duration((float64(sum.Copied) - rows) / rows * float64(time.Second)); time.Since(start) < min {
		t.Fatalf("%d rows in %v at %v rows/s", sum.Copied, time.Since(start), rows)
	}
	if sum.Copied < 2*rows {
		t.Fatalf("only %d rows: the test proves nothing", sum.Copied)
	}
}

// BenchmarkMigrate copies 1:1 messages among 8 users into a new database
// each iteration (rows written, no verification):
//
//	go test -run '^$' -bench Migrate -benchtime 3x ./store/migrate
func BenchmarkMigrate(b *testing.B) {
	for _, n := range []int{2000} {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			src := newSource(b, 8, n)
			from := src.open(b)
			b.ReportAllocs()
			var sum migrate.Summary
			var copying time.Duration
			for b.Loop() {
				dst, _ := newDst(b)
				var err error
				if sum, err = migrate.Run(b.Context(), from, dst, migrate.Options{Sample: -1}); err != nil {
					b.Fatal(err)
				}
				copying += sum.Copying
			}
			secs := copying.Seconds()
			b.ReportMetric(float64(sum.Copied)*float64(b.N)/secs, "rows/s")
			b.ReportMetric(float64(sum.Messages)*float64(b.N)/secs, "msgs/s")
		})
	}
}

// TestVerifyReadsConversationsOnce: a user's conversation list (read whole,
// with no limit) is compared once, not again for each sampled inbox entry
// of the user; a changed row is still found.
func TestVerifyReadsConversationsOnce(t *testing.T) {
	src := newSource(t, 3, 30)
	from := src.open(t)
	dst, _ := newDst(t)
	if _, err := migrate.Run(t.Context(), from, dst, migrate.Options{Sample: 1}); err != nil {
		t.Fatal(err)
	}
	user := src.users[0]
	if _, err := dst.Database().Collection("convs").UpdateOne(t.Context(), bson.D{{Key: "user", Value: user}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "unread", Value: 12345}}}}); err != nil {
		t.Fatal(err)
	}
	sum, err := migrate.Run(t.Context(), from, dst, migrate.Options{Sample: 1})
	if !errors.Is(err, migrate.ErrMismatch) {
		t.Fatalf("err %v, want ErrMismatch", err)
	}
	n := 0
	for _, m := range sum.Mismatches {
		if m == "conversations of "+user+" differs" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d mismatches for %s's conversations, want 1: %q", n, user, sum.Mismatches)
	}
}
