package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// PushStore is what the Push part opens: jobs are committed with their
// messages.
type PushStore interface {
	store.Versions
	store.Messages
	store.Push
}

// Push tests the Push role: registrations, and the outbox of jobs and
// items, claimed by one holder at a time.
func Push(t *testing.T, open func(t *testing.T) PushStore) {
	run(t, open, []testCase{
		{"PushDeviceRoundTrip", testPushDeviceRoundTrip},
		{"PushDeviceReplace", testPushDeviceReplace},
		{"PushDeviceEmpty", testPushDeviceEmpty},
		{"PushTokenOfAnotherUser", testPushTokenOtherUser},
		{"PushTokenMovesBetweenDevices", testPushTokenMoves},
		{"DeletePushDevice", testPushDeviceDelete},
		{"DeleteUserPushDevices", testPushDeleteUser},
		{"SetLastPush", testPushSetLastPush},
		{"PushItemsIdempotent", testPushItemsIdempotent},
		{"DuePushDevices", testPushDue},
		{"RetryPushItems", testPushRetry},
		{"ClaimPushDevice", testPushClaimDevice},
		{"ClaimPushDeviceConcurrent", testPushClaimDeviceConcurrent},
		{"PushJobsCommitted", testPushJobsCommitted},
		{"ClaimPushJobs", testPushClaimJobs},
		{"ClaimPushJobsConcurrent", testPushClaimJobsConcurrent},
		{"SweepPush", testPushSweep},
		{"PushDepth", testPushDepth},
		{"PushRowsBehindTheHead", testPushBehindHead},
		{"ExpandPushJobs", testPushExpand},
	})
}

// t0 is the suite's "now" for the outbox: unix ms.
const t0 int64 = 1_700_000_000_000

func pushDevice(user, device, token string) store.PushDevice {
	return store.PushDevice{User: user, Device: device, Provider: "apns", Token: token,
		Topic: "com.example.app", Sandbox: true, Login: "ab12", Created: t0}
}

func (f *fixture) putPush(d store.PushDevice) {
	f.t.Helper()
	if err := f.push.PutPushDevice(f.ctx, d); err != nil {
		f.t.Fatalf("put push device %s/%s: %v", d.User, d.Device, err)
	}
}

func (f *fixture) getPush(user, device string) store.PushDevice {
	f.t.Helper()
	d, err := f.push.GetPushDevice(f.ctx, user, device)
	if err != nil {
		f.t.Fatalf("get push device %s/%s: %v", user, device, err)
	}
	return d
}

func (f *fixture) noPush(user, device string) {
	f.t.Helper()
	_, err := f.push.GetPushDevice(f.ctx, user, device)
	wantErr(f.t, "get push device "+user+"/"+device, err, store.ErrNotFound)
}

// item is a pending push item of message id, due at due.
func item(user, device string, id, due int64) store.PushItem {
	return store.PushItem{User: user, Device: device, MsgID: id, Created: t0, Due: due}
}

func (f *fixture) addItems(items ...store.PushItem) {
	f.t.Helper()
	if err := f.push.AddPushItems(f.ctx, items); err != nil {
		f.t.Fatalf("add push items: %v", err)
	}
}

func (f *fixture) pendingItems(user, device string) []store.PushItem {
	f.t.Helper()
	items, err := f.push.PendingPushItems(f.ctx, user, device)
	if err != nil {
		f.t.Fatalf("pending push items of %s/%s: %v", user, device, err)
	}
	return items
}

func (f *fixture) pendingIDs(user, device string) []int64 {
	f.t.Helper()
	var ids []int64
	for _, it := range f.pendingItems(user, device) {
		ids = append(ids, it.MsgID)
	}
	return ids
}

func (f *fixture) done(user, device string, at int64, ids ...int64) {
	f.t.Helper()
	if err := f.push.DonePushItems(f.ctx, user, device, ids, at); err != nil {
		f.t.Fatalf("done push items of %s/%s: %v", user, device, err)
	}
}

func (f *fixture) due(now int64, n int) []store.SessionID {
	f.t.Helper()
	ids, err := f.push.DuePushDevices(f.ctx, now, n)
	if err != nil {
		f.t.Fatalf("due push devices at %d: %v", now, err)
	}
	return ids
}

func (f *fixture) claimDevice(user, device, holder string, now, until int64) bool {
	f.t.Helper()
	ok, err := f.push.ClaimPushDevice(f.ctx, user, device, holder, now, until)
	if err != nil {
		f.t.Fatalf("claim push device %s/%s for %s: %v", user, device, holder, err)
	}
	return ok
}

func (f *fixture) claimJobs(holder string, now, until int64, n int) []int64 {
	f.t.Helper()
	jobs, err := f.push.ClaimPushJobs(f.ctx, holder, now, until, n)
	if err != nil {
		f.t.Fatalf("claim push jobs for %s: %v", holder, err)
	}
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.MsgID
	}
	return ids
}

func (f *fixture) depth() (jobs, items int64) {
	f.t.Helper()
	jobs, items, err := f.push.PushDepth(f.ctx)
	if err != nil {
		f.t.Fatalf("push depth: %v", err)
	}
	return jobs, items
}

// commitJobs commits a message from alice to bob for each id, with its
// push job, in one batch.
func (f *fixture) commitJobs(ids ...int64) *store.Batch {
	f.t.Helper()
	var b store.Batch
	for _, id := range ids {
		f.add(&b, "alice", "bob", id, t0+id)
		b.PushJobs = append(b.PushJobs, store.PushJob{MsgID: id, Created: t0 + id})
	}
	f.commit(&b)
	return &b
}

func sid(user, device string) store.SessionID { return store.SessionID{User: user, Device: device} }

func equalIDs[T any](t *testing.T, what string, got, want []T) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

// testPushDeviceRoundTrip: every field comes back; a device without one,
// or beside one whose IDs start alike, is ErrNotFound; PushDevices orders
// by user then device and leaves out users without one.
func testPushDeviceRoundTrip(t *testing.T, f *fixture) {
	f.noPush("bob", "phone")
	want := pushDevice("bob", "phone", "tok-b1")
	want.LastPush = t0 + 5
	f.putPush(want)
	if got := f.getPush("bob", "phone"); got != want {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	f.putPush(store.PushDevice{User: "bobby", Device: "phone", Provider: "fcm", Token: "tok-f", Created: t0})
	f.putPush(store.PushDevice{User: "bob", Device: "phones", Provider: "webhook", Token: "tok-w", Created: t0})
	f.putPush(pushDevice("alice", "tablet", "tok-a2"))
	f.putPush(pushDevice("alice", "laptop", "tok-a1"))
	f.noPush("bo", "phone")
	f.noPush("bob", "phon")

	ds, err := f.push.PushDevices(f.ctx, []string{"bob", "nobody", "alice", "bob"})
	if err != nil {
		t.Fatalf("push devices: %v", err)
	}
	var got []store.SessionID
	for _, d := range ds {
		got = append(got, sid(d.User, d.Device))
	}
	equalIDs(t, "push devices of bob, nobody, alice", got,
		[]store.SessionID{sid("alice", "laptop"), sid("alice", "tablet"), sid("bob", "phone"), sid("bob", "phones")})
	if len(ds) == 4 && ds[2] != want {
		t.Errorf("push devices: bob/phone is %+v, want %+v", ds[2], want)
	}
	if ds, err := f.push.PushDevices(f.ctx, nil); err != nil || len(ds) != 0 {
		t.Errorf("push devices of no users: %v %v", ds, err)
	}
}

// testPushDeviceReplace: a second registration of a device replaces the
// first but keeps its LastPush; the old token is free for another user.
func testPushDeviceReplace(t *testing.T, f *fixture) {
	f.putPush(pushDevice("bob", "phone", "tok-1"))
	if err := f.push.SetLastPush(f.ctx, "bob", "phone", t0+7); err != nil {
		t.Fatal(err)
	}
	next := store.PushDevice{User: "bob", Device: "phone", Provider: "fcm", Token: "tok-2", Created: t0 + 10}
	f.putPush(next)
	want := next
	want.LastPush = t0 + 7
	if got := f.getPush("bob", "phone"); got != want {
		t.Errorf("replaced:\n got %+v\nwant %+v", got, want)
	}
	f.putPush(pushDevice("carol", "phone", "tok-1")) // bob's old token, no longer his
	if got := f.getPush("bob", "phone"); got != want {
		t.Errorf("after another user took the old token:\n got %+v\nwant %+v", got, want)
	}
}

// testPushDeviceEmpty: a registration with an empty user, device,
// provider or token is refused, and nothing is written.
func testPushDeviceEmpty(t *testing.T, f *fixture) {
	for name, d := range map[string]store.PushDevice{
		"no user":     {Device: "phone", Provider: "apns", Token: "tok"},
		"no device":   {User: "bob", Provider: "apns", Token: "tok"},
		"no provider": {User: "bob", Device: "phone", Token: "tok"},
		"no token":    {User: "bob", Device: "phone", Provider: "apns"},
	} {
		if err := f.push.PutPushDevice(f.ctx, d); err == nil {
			t.Errorf("%s: registered", name)
		}
	}
	f.noPush("bob", "phone")
	f.noPush("", "phone")
	f.noPush("bob", "")
	f.putPush(pushDevice("carol", "phone", "tok")) // the token was not taken
}

// testPushTokenOtherUser: a token another user's device holds (with the
// same provider) is ErrExists, and nothing is written; with another
// provider it is another token.
func testPushTokenOtherUser(t *testing.T, f *fixture) {
	bob := pushDevice("bob", "phone", "tok-x")
	f.putPush(bob)
	err := f.push.PutPushDevice(f.ctx, pushDevice("alice", "phone", "tok-x"))
	wantErr(t, "alice registering bob's token", err, store.ErrExists)
	f.noPush("alice", "phone")
	if got := f.getPush("bob", "phone"); got != bob {
		t.Errorf("bob after alice's attempt: %+v", got)
	}
	// alice, registered with another token, tries bob's: hers stays.
	alice := pushDevice("alice", "phone", "tok-a")
	f.putPush(alice)
	err = f.push.PutPushDevice(f.ctx, pushDevice("alice", "phone", "tok-x"))
	wantErr(t, "alice moving to bob's token", err, store.ErrExists)
	if got := f.getPush("alice", "phone"); got != alice {
		t.Errorf("alice after the refused move: %+v", got)
	}
	fcm := pushDevice("alice", "phone", "tok-x")
	fcm.Provider = "fcm"
	f.putPush(fcm)
	if got := f.getPush("alice", "phone"); got != fcm {
		t.Errorf("alice with the same token of another provider: %+v", got)
	}
}

// testPushTokenMoves: a token registered by another device of the same
// user leaves that device (the app's device ID changed).
func testPushTokenMoves(t *testing.T, f *fixture) {
	f.putPush(pushDevice("bob", "old", "tok-m"))
	f.putPush(pushDevice("bob", "keep", "tok-k"))
	f.putPush(pushDevice("bob", "new", "tok-m"))
	f.noPush("bob", "old")
	if got := f.getPush("bob", "new"); got.Token != "tok-m" {
		t.Errorf("bob/new: %+v", got)
	}
	if got := f.getPush("bob", "keep"); got.Token != "tok-k" {
		t.Errorf("bob/keep: %+v", got)
	}
	// The token is bob/new's alone now: removing it by token removes it.
	if err := f.push.DeletePushDevice(f.ctx, "bob", "new", "tok-m"); err != nil {
		t.Fatalf("delete bob/new: %v", err)
	}
	f.noPush("bob", "new")
	f.putPush(pushDevice("carol", "x", "tok-m")) // and it is free
}

// testPushDeviceDelete: removes the registration and its items;
// ErrNotFound for none, and for a token that is no longer the device's,
// which then removes nothing.
func testPushDeviceDelete(t *testing.T, f *fixture) {
	err := f.push.DeletePushDevice(f.ctx, "bob", "phone", "")
	wantErr(t, "delete of no registration", err, store.ErrNotFound)

	f.putPush(pushDevice("bob", "phone", "tok-old"))
	f.putPush(pushDevice("bob", "phone", "tok-new")) // registered again since
	f.putPush(pushDevice("bob", "tablet", "tok-t"))
	f.addItems(item("bob", "phone", 1, t0), item("bob", "phone", 2, t0), item("bob", "tablet", 1, t0))

	err = f.push.DeletePushDevice(f.ctx, "bob", "phone", "tok-old") // a provider's late "invalid"
	wantErr(t, "delete with a stale token", err, store.ErrNotFound)
	if got := f.getPush("bob", "phone"); got.Token != "tok-new" {
		t.Errorf("after a delete with a stale token: %+v", got)
	}
	equalIDs(t, "items after a delete with a stale token", f.pendingIDs("bob", "phone"), []int64{1, 2})

	if err := f.push.DeletePushDevice(f.ctx, "bob", "phone", "tok-new"); err != nil {
		t.Fatalf("delete with the token: %v", err)
	}
	f.noPush("bob", "phone")
	equalIDs(t, "items after the delete", f.pendingIDs("bob", "phone"), nil)
	equalIDs(t, "due after the delete", f.due(t0, 10), []store.SessionID{sid("bob", "tablet")})
	err = f.push.DeletePushDevice(f.ctx, "bob", "phone", "")
	wantErr(t, "second delete", err, store.ErrNotFound)

	if err := f.push.DeletePushDevice(f.ctx, "bob", "tablet", ""); err != nil {
		t.Fatalf("delete without a token: %v", err)
	}
	f.noPush("bob", "tablet")
	f.putPush(pushDevice("carol", "phone", "tok-new")) // the tokens are free
	f.putPush(pushDevice("carol", "tablet", "tok-t"))
	if _, items := f.depth(); items != 0 {
		t.Errorf("pending items after both deletes: %d", items)
	}
}

// testPushDeleteUser: every registration and item of the user goes, no
// other user's (not one whose ID starts with this one's); idempotent.
func testPushDeleteUser(t *testing.T, f *fixture) {
	f.putPush(pushDevice("bob", "phone", "tok-1"))
	f.putPush(pushDevice("bob", "tablet", "tok-2"))
	f.putPush(pushDevice("bobby", "phone", "tok-3"))
	f.addItems(item("bob", "phone", 1, t0), item("bob", "tablet", 1, t0), item("bobby", "phone", 1, t0))
	for range 2 {
		if err := f.push.DeleteUserPushDevices(f.ctx, "bob"); err != nil {
			t.Fatalf("delete user push devices: %v", err)
		}
	}
	f.noPush("bob", "phone")
	f.noPush("bob", "tablet")
	f.getPush("bobby", "phone")
	equalIDs(t, "bob/phone items", f.pendingIDs("bob", "phone"), nil)
	equalIDs(t, "bob/tablet items", f.pendingIDs("bob", "tablet"), nil)
	equalIDs(t, "due", f.due(t0, 10), []store.SessionID{sid("bobby", "phone")})
	f.putPush(pushDevice("carol", "phone", "tok-1")) // bob's tokens are free
	if err := f.push.DeleteUserPushDevices(f.ctx, "nobody"); err != nil {
		t.Fatalf("delete of a user without any: %v", err)
	}
}

// testPushSetLastPush: recorded on a registration; nothing for a device
// without one.
func testPushSetLastPush(t *testing.T, f *fixture) {
	d := pushDevice("bob", "phone", "tok")
	f.putPush(d)
	if err := f.push.SetLastPush(f.ctx, "bob", "phone", t0+99); err != nil {
		t.Fatal(err)
	}
	d.LastPush = t0 + 99
	if got := f.getPush("bob", "phone"); got != d {
		t.Errorf("after SetLastPush: %+v", got)
	}
	if err := f.push.SetLastPush(f.ctx, "bob", "tablet", t0); err != nil {
		t.Fatalf("SetLastPush of a device without a registration: %v", err)
	}
	f.noPush("bob", "tablet")
}

// testPushItemsIdempotent: an item added again, pending or done, is left
// as it is: a done one is never pending again (a job expanded twice).
func testPushItemsIdempotent(t *testing.T, f *fixture) {
	first := item("bob", "phone", 10, t0)
	first.Mention, first.Attempts = true, 2
	f.addItems(first, item("bob", "phone", 5, t0+1), item("bob", "phone", 5, t0+1))
	again := item("bob", "phone", 10, t0+500)
	f.addItems(again)
	got := f.pendingItems("bob", "phone")
	want := []store.PushItem{item("bob", "phone", 5, t0+1), first}
	equalIDs(t, "pending after adding one again", got, want)

	f.done("bob", "phone", t0+2, 10, 99) // 99: none such
	f.addItems(first, again)
	equalIDs(t, "pending after adding a done one again", f.pendingIDs("bob", "phone"), []int64{5})
	f.done("bob", "phone", t0+3, 5)
	f.addItems(item("bob", "phone", 5, t0))
	equalIDs(t, "pending after all done and added again", f.pendingIDs("bob", "phone"), nil)
	equalIDs(t, "due after all done", f.due(t0+1000, 10), nil)
	if _, items := f.depth(); items != 0 {
		t.Errorf("pending depth after all done: %d", items)
	}
	if err := f.push.AddPushItems(f.ctx, nil); err != nil {
		t.Errorf("add no items: %v", err)
	}
}

// testPushDue: devices with a pending item due by now, earliest Due
// first, each once, up to n; not a device held by a holder at now, not
// one whose items are done or not yet due.
func testPushDue(t *testing.T, f *fixture) {
	f.addItems(
		item("carol", "phone", 1, t0+30),
		item("bob", "phone", 1, t0+20), item("bob", "phone", 2, t0+10), item("bob", "phone", 3, t0+40),
		item("alice", "phone", 1, t0+25),
		item("dave", "phone", 1, t0+5),
		item("erin", "phone", 1, t0+100), // not due
		item("bobby", "phone", 1, t0-5),
	)
	f.done("dave", "phone", t0, 1)
	all := []store.SessionID{sid("bobby", "phone"), sid("bob", "phone"), sid("alice", "phone"), sid("carol", "phone")}
	equalIDs(t, "due at t0+50", f.due(t0+50, 10), all)
	equalIDs(t, "due at t0+50, 2", f.due(t0+50, 2), all[:2])
	equalIDs(t, "due at t0+10", f.due(t0+10, 10), all[:2])
	equalIDs(t, "due at t0-10", f.due(t0-10, 10), nil)
	equalIDs(t, "due, n 0", f.due(t0+50, 0), nil)

	if !f.claimDevice("bob", "phone", "n1", t0+50, t0+60) {
		t.Fatal("claim of bob/phone refused")
	}
	equalIDs(t, "due with bob/phone held", f.due(t0+50, 10), []store.SessionID{all[0], all[2], all[3]})
	equalIDs(t, "due with bob/phone held, 2", f.due(t0+50, 2), []store.SessionID{all[0], all[2]})
	equalIDs(t, "due once bob/phone's lease passed", f.due(t0+60, 10), all)
	f.done("bobby", "phone", t0, 1)
	equalIDs(t, "due with bobby/phone done", f.due(t0+60, 10), all[1:])
}

// testPushRetry: a pending item's Due and Attempts move; a done one's do
// not, and it stays done.
func testPushRetry(t *testing.T, f *fixture) {
	f.addItems(item("bob", "phone", 1, t0), item("bob", "phone", 2, t0), item("bob", "phone", 3, t0))
	f.done("bob", "phone", t0, 3)
	if err := f.push.RetryPushItems(f.ctx, "bob", "phone", []int64{1, 3, 7}, t0+1000, 4); err != nil {
		t.Fatalf("retry: %v", err)
	}
	got := f.pendingItems("bob", "phone")
	r1 := item("bob", "phone", 1, t0+1000)
	r1.Attempts = 4
	equalIDs(t, "pending after a retry", got, []store.PushItem{r1, item("bob", "phone", 2, t0)})
	equalIDs(t, "due at t0 (item 2)", f.due(t0, 10), []store.SessionID{sid("bob", "phone")})
	f.done("bob", "phone", t0+1, 2)
	equalIDs(t, "due at t0 once item 2 is done", f.due(t0, 10), nil)
	equalIDs(t, "due at t0+1000", f.due(t0+1000, 10), []store.SessionID{sid("bob", "phone")})
}

// testPushClaimDevice: one holder at a time; the holder may claim again
// to extend; a lease that passed is anyone's; a release by another
// holder does nothing.
func testPushClaimDevice(t *testing.T, f *fixture) {
	if !f.claimDevice("bob", "phone", "n1", t0, t0+100) {
		t.Fatal("first claim refused")
	}
	if f.claimDevice("bob", "phone", "n2", t0+50, t0+150) {
		t.Error("a second holder's claim during the lease was granted")
	}
	if !f.claimDevice("bob", "phone", "n1", t0+50, t0+200) {
		t.Error("the holder's claim again (extending) was refused")
	}
	if f.claimDevice("bob", "phone", "n2", t0+150, t0+250) {
		t.Error("a second holder's claim during the extended lease was granted")
	}
	if !f.claimDevice("bob", "tablet", "n2", t0+150, t0+250) {
		t.Error("a claim of another device was refused")
	}
	if err := f.push.ReleasePushDevice(f.ctx, "bob", "phone", "n2"); err != nil {
		t.Fatal(err)
	}
	if f.claimDevice("bob", "phone", "n3", t0+150, t0+250) {
		t.Error("a release by a non-holder ended the claim")
	}
	if !f.claimDevice("bob", "phone", "n2", t0+200, t0+300) {
		t.Error("a claim at the end of the lease was refused")
	}
	if f.claimDevice("bob", "phone", "n1", t0+250, t0+350) {
		t.Error("the old holder's claim under the new holder's lease was granted")
	}
	if err := f.push.ReleasePushDevice(f.ctx, "bob", "phone", "n2"); err != nil {
		t.Fatal(err)
	}
	if !f.claimDevice("bob", "phone", "n1", t0+250, t0+350) {
		t.Error("a claim after the holder released was refused")
	}
	if err := f.push.ReleasePushDevice(f.ctx, "nobody", "x", "n1"); err != nil {
		t.Errorf("release of a device never claimed: %v", err)
	}
}

// testPushClaimDeviceConcurrent: of holders claiming one device at once,
// one wins; so for each of several leases in turn.
func testPushClaimDeviceConcurrent(t *testing.T, f *fixture) {
	const holders = 6
	for round := range int64(4) {
		now := t0 + round*1000 // each round's lease has passed by the next
		var wins sync.WaitGroup
		var mu sync.Mutex
		var won []string
		for h := range holders {
			wins.Add(1)
			go func() {
				defer wins.Done()
				holder := fmt.Sprintf("n%d", h)
				ok, err := f.push.ClaimPushDevice(f.ctx, "bob", "phone", holder, now, now+500)
				if err != nil {
					t.Errorf("claim by %s: %v", holder, err)
					return
				}
				if ok {
					mu.Lock()
					won = append(won, holder)
					mu.Unlock()
				}
			}()
		}
		wins.Wait()
		if len(won) != 1 {
			t.Errorf("round %d: %d holders won the claim: %v", round, len(won), won)
		}
	}
}

// testPushJobsCommitted: Commit writes the batch's jobs with its
// messages; committing the batch again (a retried Commit), also after the
// jobs were expanded and deleted, writes none a second time and leaves
// one there as it is.
func testPushJobsCommitted(t *testing.T, f *fixture) {
	b := f.commitJobs(101, 102)
	if jobs, _ := f.depth(); jobs != 2 {
		t.Errorf("jobs after the commit: %d, want 2", jobs)
	}
	got, err := f.push.ClaimPushJobs(f.ctx, "n1", t0, t0+100, 10)
	if err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "jobs claimed", got, []store.PushJob{{MsgID: 101, Created: t0 + 101}, {MsgID: 102, Created: t0 + 102}})

	retry := *b
	retry.PushJobs = []store.PushJob{{MsgID: 101, Created: t0 + 999}, {MsgID: 102, Created: t0 + 999}}
	f.commit(&retry)
	if jobs, _ := f.depth(); jobs != 2 {
		t.Errorf("jobs after the batch again: %d, want 2", jobs)
	}
	equalIDs(t, "jobs claimable by another holder after the batch again", f.claimJobs("n2", t0+50, t0+150, 10), nil)
	got, err = f.push.ClaimPushJobs(f.ctx, "n2", t0+100, t0+200, 10)
	if err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "jobs once the lease passed", got, []store.PushJob{{MsgID: 101, Created: t0 + 101}, {MsgID: 102, Created: t0 + 102}})

	if err := f.push.DeletePushJobs(f.ctx, []int64{101, 102, 103}); err != nil {
		t.Fatal(err)
	}
	if err := f.push.DeletePushJobs(f.ctx, []int64{101}); err != nil {
		t.Fatalf("delete again: %v", err)
	}
	if jobs, _ := f.depth(); jobs != 0 {
		t.Errorf("jobs after delete: %d", jobs)
	}
	equalIDs(t, "jobs claimable after delete", f.claimJobs("n3", t0+1000, t0+1100, 10), nil)

	// A batch without jobs writes none.
	var plain store.Batch
	f.add(&plain, "alice", "bob", 200, t0)
	f.commit(&plain)
	if jobs, _ := f.depth(); jobs != 0 {
		t.Errorf("jobs after a batch without any: %d", jobs)
	}
}

// testPushClaimJobs: unheld jobs, oldest message first, up to n; never
// one held by another holder (nor by the same) during its lease.
func testPushClaimJobs(t *testing.T, f *fixture) {
	f.commitJobs(3, 1, 2)
	f.commitJobs(4)
	equalIDs(t, "n1 claims 2", f.claimJobs("n1", t0, t0+100, 2), []int64{1, 2})
	equalIDs(t, "n2 claims 10", f.claimJobs("n2", t0, t0+50, 10), []int64{3, 4})
	equalIDs(t, "n3 claims during the leases", f.claimJobs("n3", t0+10, t0+100, 10), nil)
	equalIDs(t, "n1 claims again during its lease", f.claimJobs("n1", t0+10, t0+100, 10), nil)
	equalIDs(t, "n3 once n2's lease passed", f.claimJobs("n3", t0+50, t0+150, 10), []int64{3, 4})
	equalIDs(t, "n0 claims 0", f.claimJobs("n0", t0+1000, t0+1100, 0), nil)
	if err := f.push.DeletePushJobs(f.ctx, []int64{1}); err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "n2 once n1's lease passed", f.claimJobs("n2", t0+100, t0+200, 10), []int64{2})
}

// testPushClaimJobsConcurrent: holders claiming many jobs at once never
// both get one, and together get every one.
func testPushClaimJobsConcurrent(t *testing.T, f *fixture) {
	const jobs, holders, perClaim = 120, 4, 7
	var b store.Batch
	var want []int64
	for id := int64(1); id <= jobs; id++ {
		f.add(&b, "alice", "bob", id, t0)
		b.PushJobs = append(b.PushJobs, store.PushJob{MsgID: id, Created: t0})
		want = append(want, id)
	}
	f.commit(&b)
	var wg sync.WaitGroup
	got := make([][]int64, holders)
	for h := range holders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprintf("n%d", h)
			// Bounded: a store that hands a job out twice might never
			// run out of jobs to hand.
			for range jobs {
				js, err := f.push.ClaimPushJobs(f.ctx, holder, t0, t0+60_000, perClaim)
				if err != nil {
					t.Errorf("claim by %s: %v", holder, err)
					return
				}
				if len(js) == 0 {
					return
				}
				for _, j := range js {
					got[h] = append(got[h], j.MsgID)
				}
			}
		}()
	}
	wg.Wait()
	var all []int64
	owner := map[int64]int{}
	for h, ids := range got {
		for _, id := range ids {
			if o, dup := owner[id]; dup {
				t.Errorf("job %d claimed by n%d and n%d", id, o, h)
			}
			owner[id] = h
			all = append(all, id)
		}
	}
	slices.Sort(all)
	all = slices.Compact(all)
	equalIDs(t, "jobs claimed in all", all, want)
}

// testPushSweep: items done before the mark go; items done since, and
// pending ones, stay; a swept item is gone (PendingPushItems), and the
// claims whose lease ended before the mark go too.
func testPushSweep(t *testing.T, f *fixture) {
	f.addItems(item("bob", "phone", 1, t0), item("bob", "phone", 2, t0), item("bob", "phone", 3, t0),
		item("carol", "phone", 1, t0))
	f.done("bob", "phone", t0+10, 1)
	f.done("carol", "phone", t0+20, 1)
	f.done("bob", "phone", t0+30, 2)
	n, err := f.push.SweepPush(f.ctx, t0+30)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("swept %d, want 2", n)
	}
	// Only a swept item can be added again.
	f.addItems(item("bob", "phone", 1, t0), item("bob", "phone", 2, t0), item("carol", "phone", 1, t0))
	equalIDs(t, "bob/phone pending after the sweep and adding again", f.pendingIDs("bob", "phone"), []int64{1, 3})
	equalIDs(t, "carol/phone pending after the sweep and adding again", f.pendingIDs("carol", "phone"), []int64{1})
	if n, err := f.push.SweepPush(f.ctx, t0+30); err != nil || n != 0 {
		t.Errorf("sweep again: %d %v", n, err)
	}
	f.done("bob", "phone", t0+40, 1, 3)
	if n, err := f.push.SweepPush(f.ctx, t0+1000); err != nil || n != 3 {
		t.Errorf("sweep of the rest: %d %v, want 3", n, err)
	}

	if !f.claimDevice("bob", "phone", "n1", t0, t0+100) {
		t.Fatal("claim refused")
	}
	if _, err := f.push.SweepPush(f.ctx, t0+100); err != nil {
		t.Fatal(err)
	}
	if f.claimDevice("bob", "phone", "n2", t0+50, t0+150) {
		t.Error("a sweep before the lease ended removed the claim")
	}
	if _, err := f.push.SweepPush(f.ctx, t0+101); err != nil {
		t.Fatal(err)
	}
	if !f.claimDevice("bob", "phone", "n2", t0+50, t0+150) {
		t.Error("the claim stayed after a sweep past its lease")
	}
}

// testPushDepth: jobs and pending items, not done ones.
func testPushDepth(t *testing.T, f *fixture) {
	if jobs, items := f.depth(); jobs != 0 || items != 0 {
		t.Errorf("empty: %d %d", jobs, items)
	}
	f.commitJobs(1, 2, 3)
	f.addItems(item("bob", "phone", 1, t0), item("bob", "phone", 2, t0+100), item("bob", "tablet", 1, t0))
	f.done("bob", "tablet", t0, 1)
	if jobs, items := f.depth(); jobs != 3 || items != 2 {
		t.Errorf("depth: %d jobs %d items, want 3 2", jobs, items)
	}
}

// testPushBehindHead: the outbox is a queue worked from its head, and a
// row may come in behind what a scan saw first: a job of a lower message
// ID (commits at once), an item due earlier than the pending ones (a
// device past its collapse window beside one inside it). Each is found by
// the next scan. (A store that remembers where its queues start, as
// Pebble's does to seek past the tombstones of the rows done, must lower
// that start for such a row.)
func testPushBehindHead(t *testing.T, f *fixture) {
	f.commitJobs(100, 200)
	equalIDs(t, "first claim", f.claimJobs("n1", t0, t0+10, 1), []int64{100})
	if err := f.push.DeletePushJobs(f.ctx, []int64{100}); err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "second claim", f.claimJobs("n1", t0, t0+10, 10), []int64{200})
	equalIDs(t, "nothing left", f.claimJobs("n1", t0, t0+10, 10), nil)
	f.commitJobs(150)
	equalIDs(t, "a job behind the head", f.claimJobs("n1", t0, t0+10, 10), []int64{150})

	f.addItems(item("bob", "tablet", 1, t0+5000))
	equalIDs(t, "nothing due yet", f.due(t0, 10), nil)
	f.addItems(item("bob", "phone", 2, t0))
	equalIDs(t, "an item due before the pending one", f.due(t0, 10), []store.SessionID{sid("bob", "phone")})
	f.done("bob", "phone", t0, 2)
	equalIDs(t, "done", f.due(t0, 10), nil)
	if err := f.push.RetryPushItems(f.ctx, "bob", "tablet", []int64{1}, t0, 1); err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "a retry due earlier", f.due(t0, 10), []store.SessionID{sid("bob", "tablet")})
}

// testPushExpand: ExpandPushJobs writes the items of the jobs the holder
// holds and deletes those jobs; a job it does not hold (another's, its
// lease passed, gone) adds nothing and stays as it is.
func testPushExpand(t *testing.T, f *fixture) {
	f.commitJobs(1, 2, 3)
	equalIDs(t, "claimed", f.claimJobs("n1", t0, t0+100, 10), []int64{1, 2, 3})
	expand := func(holder string, now int64, ids []int64, items ...store.PushItem) {
		t.Helper()
		if err := f.push.ExpandPushJobs(f.ctx, holder, now, ids, items); err != nil {
			t.Fatalf("expand %v for %s: %v", ids, holder, err)
		}
	}
	// 3 has no item (no one to push to); 9 is no job of these.
	expand("n1", t0+1, []int64{1, 2, 3}, item("bob", "phone", 1, t0), item("bob", "phone", 2, t0),
		item("bob", "tablet", 2, t0), item("bob", "phone", 9, t0))
	equalIDs(t, "bob/phone pending", f.pendingIDs("bob", "phone"), []int64{1, 2})
	equalIDs(t, "bob/tablet pending", f.pendingIDs("bob", "tablet"), []int64{2})
	equalIDs(t, "jobs left", f.claimJobs("n2", t0+1000, t0+2000, 10), nil)
	// Expanded again (the jobs are gone): nothing.
	f.done("bob", "phone", t0+2, 1)
	expand("n1", t0+3, []int64{1, 2}, item("bob", "phone", 1, t0), item("bob", "carol", 2, t0))
	equalIDs(t, "bob/phone pending after a second expansion", f.pendingIDs("bob", "phone"), []int64{2})
	equalIDs(t, "bob/carol pending after a second expansion", f.pendingIDs("bob", "carol"), nil)

	f.commitJobs(4, 5)
	equalIDs(t, "4 claimed by n2", f.claimJobs("n2", t0, t0+100, 1), []int64{4})
	equalIDs(t, "5 claimed by n1", f.claimJobs("n1", t0, t0+10, 1), []int64{5})
	expand("n1", t0+5, []int64{4}, item("dave", "phone", 4, t0))  // n2's
	expand("n1", t0+20, []int64{5}, item("dave", "phone", 5, t0)) // n1's lease has passed
	equalIDs(t, "dave/phone pending", f.pendingIDs("dave", "phone"), nil)
	equalIDs(t, "jobs left, claimable once their leases end", f.claimJobs("n3", t0+1000, t0+2000, 10), []int64{4, 5})
	if err := f.push.ExpandPushJobs(f.ctx, "n3", t0, nil, nil); err != nil {
		t.Errorf("expand nothing: %v", err)
	}
}
