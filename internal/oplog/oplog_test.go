package oplog

import (
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

func TestRingKeepsNewestFirst(t *testing.T) {
	r := New(3)
	if got := r.Recent("", 0, 10); len(got) != 0 {
		t.Fatalf("empty ring: %+v", got)
	}
	for i, k := range []string{AuthFailure, ACLDenial, Error, Error, ACLDenial} {
		r.Add(Entry{Kind: k, Code: string(rune('a' + i))})
	}
	got := r.Recent("", 0, 10)
	if len(got) != 3 || got[0].Code != "e" || got[1].Code != "d" || got[2].Code != "c" {
		t.Fatalf("recent: %+v", got)
	}
	if got[0].Seq != 5 || got[0].TS == 0 {
		t.Fatalf("seq/ts not stamped: %+v", got[0])
	}
	if e := r.Recent(Error, 0, 10); len(e) != 2 || e[0].Code != "d" {
		t.Fatalf("by kind: %+v", e)
	}
	if e := r.Recent("", 4, 10); len(e) != 1 || e[0].Seq != 5 {
		t.Fatalf("after 4: %+v", e)
	}
	if e := r.Recent("", 0, 1); len(e) != 1 {
		t.Fatalf("limit 1: %+v", e)
	}
	if c := r.Counts(); c[Error] != 2 || c[ACLDenial] != 1 || c[AuthFailure] != 0 {
		t.Fatalf("counts: %v", c)
	}
}

func TestLongFieldsAreCutOnRuneBoundary(t *testing.T) {
	r := New(1)
	r.Add(Entry{Kind: Error, Detail: strings.Repeat("é", 300)})
	d := r.Recent("", 0, 1)[0].Detail
	if len(d) > maxField+len("…") || !utf8.ValidString(d) {
		t.Fatalf("detail %d bytes, valid %v", len(d), utf8.ValidString(d))
	}
}

func TestConcurrentAdd(t *testing.T) {
	r := New(64)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				r.Add(Entry{Kind: ACLDenial})
				_ = r.Recent("", 0, 5)
			}
		}()
	}
	wg.Wait()
	if got := r.Recent("", 0, 100); len(got) != 64 || got[0].Seq != 8000 {
		t.Fatalf("after 8000 adds: %d events, newest seq %d", len(got), got[0].Seq)
	}
}

func TestNilRecorderIgnoresAdd(t *testing.T) {
	var r *Recorder
	r.Add(Entry{Kind: Error}) // must not panic
}
