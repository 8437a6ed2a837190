package client

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	gojson "github.com/goccy/go-json"

	"github.com/imqtt/imqtt/wire"
)

// The fuzz targets below run as ordinary tests on their seed corpora
// (testdata/fuzz/<Target>/); to fuzz one:
//
//	go test -run '^$' -fuzz '^FuzzSequencer$' -fuzztime 2m ./client/

// FuzzDecodeEvent feeds anything a peer could publish on the inbox topic
// through what the loop does with it (Decompress, decodeEvent): no panic,
// nothing nested past wire.MaxDepth decoded, and a decoded event is
// consistent with itself.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"kind":"msg","id":"7","ver":3,"from":"alice","to":"bob","type":"text","body":"hi","ts":1}`))
	f.Add([]byte(poisonItem(4, wire.MaxDepth+2)))
	f.Add([]byte(`{"kind":"group","group":"g","seq":4,"from":"a","action":"updated","name":"n","muted":true}`))
	f.Add([]byte(`{"kind":"group","group":"g","action":"disbanded","by":"a"}`))
	f.Add([]byte(`{"kind":"contact","action":"request","user":"bob","since":1}`))
	f.Add([]byte(`{"kind":"presence","user":"bob","online":false,"last_seen":9}`))
	f.Add([]byte(`{"kind":"block","user":"eve","blocked":true}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Decompress(data)
		if err != nil {
			return
		}
		ev, err := decodeEvent(p, false)
		deep := wire.CheckDepth(p, wire.MaxDepth) != nil
		if err != nil {
			if deep && !errors.Is(err, wire.ErrTooDeep) {
				t.Fatalf("a too-deep event failed otherwise: %v", err)
			}
			return
		}
		if deep {
			t.Fatal("decoded an event nested past wire.MaxDepth")
		}
		checkEvent(t, ev, false)
		if string(ev.Raw) != string(p) {
			t.Fatal("the event's Raw is not its payload")
		}
	})
}

// checkEvent checks what OnEvent may rely on in a decoded event.
func checkEvent(t *testing.T, ev Event, synced bool) {
	t.Helper()
	if ev.Synced != synced || ev.Raw == nil {
		t.Fatalf("event %+v: synced %v, raw %q", ev, ev.Synced, ev.Raw)
	}
	switch ev.Kind {
	case wire.KindMsg:
		if ev.Msg == nil || ev.Msg.Ver != ev.Ver || ev.Msg.Kind != wire.KindMsg {
			t.Fatalf("msg event %+v with %+v", ev, ev.Msg)
		}
	case wire.KindUnread:
		if ev.Unread == nil || ev.Ver != 0 && ev.Msg != nil {
			t.Fatalf("unread event %+v", ev)
		}
	case wire.KindRecall, wire.KindEdit, wire.KindReaction, wire.KindDelete:
		if m := ev.Item(); m == nil || m == ev.Msg || m.Kind != ev.Kind || m.Ver != ev.Ver {
			t.Fatalf("%s event %+v with %+v", ev.Kind, ev, m)
		}
	case wire.KindReceipt, wire.KindTyping:
		if ev.Ver != 0 || ev.Item() != nil || (ev.Receipt == nil) == (ev.Typing == nil) {
			t.Fatalf("%s event %+v: unversioned, not an item", ev.Kind, ev)
		}
	case wire.KindContact, wire.KindBlock, wire.KindPresence:
		if n := btoi(ev.Contact != nil) + btoi(ev.Block != nil) + btoi(ev.Presence != nil); ev.Ver != 0 || ev.Item() != nil || n != 1 {
			t.Fatalf("%s event %+v: unversioned, not an item, one field", ev.Kind, ev)
		}
	case wire.KindGroup:
		// A stored change (a seq) is an item of its group; a membership
		// event is not.
		if (ev.Group == nil) == (ev.GroupChange == nil) || ev.GroupChange != nil && (ev.Item() != ev.GroupChange || ev.GroupChange.Seq == 0 || !groupItem(ev)) {
			t.Fatalf("group event %+v with %+v", ev, ev.GroupChange)
		}
	}
}

// FuzzDecodeSync feeds anything that could arrive on the device topic
// through the batch decoders (Decompress, decodeDevice, decodeSync,
// splitSync): no panic; a batch that decodes accounts for every item, each
// decoded or skipped; a skipped item never takes the batch with it.
func FuzzDecodeSync(f *testing.F) {
	f.Add([]byte(`{"kind":"sync","since":1,"upto":3,"more":false,"epoch":"e","items":[{"ver":2,"id":"5"},{"ver":"x"}]}`))
	f.Add([]byte(`{"kind":"sync","since":1,"upto":3,"items":[` + poisonItem(2, 200) + `]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Decompress(data)
		if err != nil {
			return
		}
		b, evs, bad, err := decodeSync(p)
		var rs rawSync
		whole := gojson.Unmarshal(p, &rs) == nil
		split, serr := splitSync(p)
		switch {
		case err != nil:
			if whole || serr == nil {
				t.Fatalf("decodeSync failed (%v) on a batch that decodes", err)
			}
			return
		case !whole:
			if serr != nil {
				t.Fatal("decodeSync decoded what neither decoder does")
			}
			rs = split
		}
		if !reflect.DeepEqual(b, rs.Sync) || len(evs)+len(bad) != len(rs.Items) {
			t.Fatalf("batch %+v with %d items, %d skipped; the payload has %d", b, len(evs), len(bad), len(rs.Items))
		}
		for _, ev := range evs {
			checkEvent(t, ev, true)
			if wire.CheckDepth(ev.Raw, wire.MaxDepth) != nil {
				t.Fatal("decoded an item nested past wire.MaxDepth")
			}
		}
		if serr == nil {
			for _, it := range split.Items {
				if len(it) == 0 || wire.CheckDepth(it, 1<<30) != nil {
					t.Fatalf("split out an item %q", it)
				}
			}
		}
		if d, err := decodeDevice(p); err == nil && d.Kind == wire.KindSync && !reflect.DeepEqual(d.Sync, rs.Sync) {
			t.Fatalf("device event %+v, batch %+v", d.Sync, rs.Sync)
		}
	})
}

// FuzzSequencer plays random interleavings of live events (true, repeated,
// forged far ahead, unversioned), sync requests, sync batches (late,
// overlapping, resets, holes, items the batch skipped) and reconnects, and
// checks after every step that the cursor moved only as the rules allow:
// onto the items and Upto of a batch it took, or one by one onto live
// events that continued it; that it never went back but by a Reset; that
// versions came out in order and at most once; and that what ahead
// promised, batch did.
func FuzzSequencer(f *testing.F) {
	f.Add([]byte{0, 3, 1, 5, 2, 0, 4, 7, 0, 0, 200, 2, 0, 1, 0, 0})
	f.Add([]byte{0, 250, 1, 9, 2, 0, 0, 0, 0, 1, 9, 2, 0, 0, 0, 0, 1, 9, 2, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			c := data[0]
			data = data[1:]
			return int(c)
		}
		s := inboxSequencer(uint64(next()), "e1")
		last := s.cursor // the last version delivered, or the cursor it followed
		for step := 0; len(data) > 0 && step < 2000; step++ {
			before := s.cursor
			var out []Event
			r := before // the cursor as the oracle sees it
			switch op := next() % 6; op {
			case 0, 1: // a live event: near the cursor, or forged far ahead
				var v uint64
				if op == 0 {
					v = before + uint64(next()%8)
				} else {
					v = before + uint64(1+next())<<12
				}
				if v == 0 {
					v = 1
				}
				out, _ = s.live(ev(v))
				if len(out) == 0 && s.cursor != before {
					t.Fatalf("live %d moved the cursor %d -> %d without delivering", v, before, s.cursor)
				}
			case 2:
				s.begin(1 + next()%16)
			case 3: // a batch
				back := uint64(next() % 6)
				since := before - min(before, back)
				if next()%4 == 0 {
					since += uint64(next() % 4) // a batch past the cursor, ignored
				}
				flags := next()
				b := wire.Sync{Kind: wire.KindSync, Since: since, More: flags&1 != 0, Reset: flags&2 != 0, Epoch: "e1"}
				if flags&4 != 0 {
					b.Epoch = "e2"
				}
				v := since
				var items []Event
				for range next() % 6 {
					v += 1 + uint64(next()%3)
					items = append(items, ev(v))
					items[len(items)-1].Synced = true
				}
				b.Upto = v + uint64(next()%3)
				n := len(items) + next()%2 // perhaps one more the decoder skipped
				resets := s.resets(b)
				ahead := s.ahead(b, n)
				var again bool
				out, again = s.batch(b, items, n)
				if ahead && (!again || s.cursor != b.Upto) {
					t.Fatalf("ahead(%+v, %d) but batch gave again=%v, cursor %d", b, n, again, s.cursor)
				}
				if b.Reset && resets {
					r, last = b.Since, b.Since
				} else if b.Reset {
					if len(out) > 0 || s.cursor != before {
						t.Fatalf("a reset already answered delivered %v, cursor %d -> %d", vers(out), before, s.cursor)
					}
					break
				}
				if b.Since > r {
					if len(out) > 0 || s.cursor != before {
						t.Fatalf("a batch from %d past the cursor %d delivered %v, cursor -> %d", b.Since, before, vers(out), s.cursor)
					}
					break
				}
				// The batch's items come first, then what followed its Upto.
				synced := 0
				for synced < len(out) && out[synced].Synced {
					e := out[synced]
					if e.Ver <= r || e.Ver <= last || !slices.ContainsFunc(items, func(it Event) bool { return it.Ver == e.Ver }) {
						t.Fatalf("batch %+v of %v delivered %d at cursor %d", b, vers(items), e.Ver, r)
					}
					r, last = e.Ver, e.Ver
					synced++
				}
				r = max(r, b.Upto)
				out = out[synced:]
				last = max(last, r)
			case 4:
				s.connected()
			case 5: // unversioned
				u := Event{Kind: wire.KindUnread, Unread: &wire.Unread{Kind: wire.KindUnread}}
				out, _ = s.live(u)
				if len(out) != 1 || out[0].Kind != wire.KindUnread || s.cursor != before {
					t.Fatalf("unread: %v, cursor %d -> %d", out, before, s.cursor)
				}
				continue
			}
			// Whatever else came out are live events, one after the other
			// from the cursor.
			for _, e := range out {
				if e.Synced || e.Ver != r+1 {
					t.Fatalf("step %d: delivered live %d (synced %v) at cursor %d; cursor %d -> %d", step, e.Ver, e.Synced, r, before, s.cursor)
				}
				r = e.Ver
				if e.Ver <= last {
					t.Fatalf("step %d: %d delivered after %d", step, e.Ver, last)
				}
				last = e.Ver
			}
			if s.cursor != r {
				t.Fatalf("step %d: cursor %d -> %d, but what was vouched for or delivered reaches %d", step, before, s.cursor, r)
			}
			if len(s.pending) > maxHeld {
				t.Fatalf("%d events wait", len(s.pending))
			}
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
