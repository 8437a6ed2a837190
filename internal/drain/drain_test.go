package drain_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/internal/drain"
)

var _ broker.Waves = (*drain.State)(nil)

// TestBegin: a node serves until the first Begin, which alone calls leave
// (however many callers race), and drains from then on.
func TestBegin(t *testing.T) {
	var left atomic.Int32
	s := drain.New(func() { left.Add(1) })
	if s.Draining() || !s.Since().IsZero() {
		t.Fatalf("a new state drains: %v since %v", s.Draining(), s.Since())
	}
	if _, ok := s.Progress(); ok {
		t.Fatal("a new state has an operator's drain")
	}
	before := time.Now()
	var began atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.Begin() {
				began.Add(1)
			}
		}()
	}
	wg.Wait()
	if began.Load() != 1 || left.Load() != 1 {
		t.Fatalf("8 racing Begins: %d began, leave called %d times; want 1 and 1", began.Load(), left.Load())
	}
	if !s.Draining() || s.Since().Before(before.Add(-time.Millisecond)) || s.Since().After(time.Now()) {
		t.Fatalf("after Begin: draining %v since %v (began after %v)", s.Draining(), s.Since(), before)
	}
	if _, ok := s.Progress(); ok {
		t.Fatal("Begin started an operator's drain")
	}
	drain.New(nil).Begin() // no leave: nothing to call
}

// TestStart: an operator's drain begins the drain (leaving once), is
// started once, and counts the waves until none is left.
func TestStart(t *testing.T) {
	var left atomic.Int32
	s := drain.New(func() { left.Add(1) })
	s.Wave(3, 7) // no operator's drain: nothing to count
	p, ok := s.Start(10, 500, 10)
	if !ok || !s.Draining() || left.Load() != 1 {
		t.Fatalf("Start: %v, draining %v, leave called %d times", ok, s.Draining(), left.Load())
	}
	if p.Percent != 10 || p.IntervalMS != 500 || p.Total != 10 || p.Remaining != 10 || p.Waves != 0 || p.Done || p.Started == 0 {
		t.Fatalf("Start's progress: %+v", p)
	}
	if again, ok := s.Start(50, 20, 99); ok || again != p {
		t.Fatalf("a second Start: %v %+v, want false and %+v", ok, again, p)
	}
	s.Begin()
	if left.Load() != 1 {
		t.Fatalf("leave called %d times", left.Load())
	}
	s.Wave(4, 6)
	s.Wave(0, 6) // nobody kicked, some left: still a wave
	if got, _ := s.Progress(); got.Waves != 2 || got.Disconnected != 4 || got.Remaining != 6 || got.Done || got.Finished != 0 {
		t.Fatalf("after two waves: %+v", got)
	}
	s.Wave(6, -1)
	done, _ := s.Progress()
	if done.Waves != 3 || done.Disconnected != 10 || done.Remaining != 0 || !done.Done || done.Finished < done.Started {
		t.Fatalf("after the last wave: %+v", done)
	}
	s.Wave(0, 0) // a later drain (shutdown) finds nobody: the finished drain stays as it was
	if got, _ := s.Progress(); got != done {
		t.Fatalf("a wave after done changed %+v to %+v", done, got)
	}
}

// TestStartEmpty: a drain of a node without clients is done at its
// first wave, which kicks nobody and counts as no wave.
func TestStartEmpty(t *testing.T) {
	s := drain.New(nil)
	s.Start(10, 1000, 0)
	s.Wave(0, 0)
	if p, _ := s.Progress(); !p.Done || p.Waves != 0 || p.Remaining != 0 {
		t.Fatalf("%+v", p)
	}
}

// TestProgressJSON: the progress's JSON is the contract's
// (docs/http.md, GET /v1/admin/nodes).
func TestProgressJSON(t *testing.T) {
	raw, err := json.Marshal(drain.Progress{Started: 1, Percent: 2, IntervalMS: 3, Total: 4, Disconnected: 5, Remaining: 6, Waves: 7})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"started":1,"percent":2,"interval_ms":3,"total":4,"disconnected":5,"remaining":6,"waves":7,"done":false}`
	if string(raw) != want {
		t.Fatalf("got  %s\nwant %s", raw, want)
	}
}

// TestQuiesce: Quiesce refuses a client's new sends at once, returns only
// when its sends in flight are answered, and leaves other clients alone.
func TestQuiesce(t *testing.T) {
	s := drain.New(nil)
	for range 2 {
		if !s.Admit("carol/tab") {
			t.Fatal("a send of a client nobody quiesced was refused")
		}
	}
	quiesced := make(chan struct{})
	go func() {
		s.Quiesce([]string{"carol/tab", "dave/phone"})
		close(quiesced)
	}()
	// Quiesce marks before it waits: once a send is refused, it waits.
	deadline := time.Now().Add(5 * time.Second)
	for s.Admit("dave/phone") {
		s.Answered("dave/phone")
		if time.Now().After(deadline) {
			t.Fatal("Quiesce did not refuse dave's sends")
		}
		time.Sleep(time.Millisecond)
	}
	if s.Admit("carol/tab") {
		t.Fatal("a send of a quiesced client was admitted")
	}
	if !s.Admit("alice/phone") {
		t.Fatal("a send of another client was refused")
	}
	s.Answered("carol/tab")
	select {
	case <-quiesced:
		t.Fatal("Quiesce returned with a send in flight")
	case <-time.After(50 * time.Millisecond):
	}
	s.Answered("carol/tab")
	select {
	case <-quiesced:
	case <-time.After(5 * time.Second):
		t.Fatal("Quiesce did not return once the sends in flight were answered")
	}
	if s.Admit("carol/tab") {
		t.Fatal("a send after Quiesce was admitted")
	}
}

// BenchmarkAdmitAnswered: the drain's cost on every send (Admit, then
// Answered), from many clients' goroutines at once.
func BenchmarkAdmitAnswered(b *testing.B) {
	s := drain.New(nil)
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("user%d/phone", n.Add(1))
		for pb.Next() {
			if !s.Admit(id) {
				b.Fatal("refused")
			}
			s.Answered(id)
		}
	})
}
