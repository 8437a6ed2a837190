package client

import (
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
)

func TestFileCursorMissingIsZero(t *testing.T) {
	f := NewFileCursor(filepath.Join(t.TempDir(), "none", "cursor.json"))
	c, err := f.Load()
	if err != nil || c.Ver != 0 || c.Epoch != "" || c.Groups != nil {
		t.Fatalf("Load of a missing file = %+v, %v", c, err)
	}
}

func TestFileCursorSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "home", "cursor.json")
	if err := NewFileCursor(path).Save(Cursor{Ver: 42, Epoch: "ep-1"}); err != nil {
		t.Fatal(err)
	}
	want := Cursor{Ver: 43, Epoch: "ep-2", Groups: map[string]GroupCursor{"g1": {Seq: 7, Epoch: "ep-2"}, "g2": {Seq: 1}}}
	if err := NewFileCursor(path).Save(want); err != nil {
		t.Fatal(err)
	}
	c, err := NewFileCursor(path).Load()
	if err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("after reopen: %+v, %v; want %+v", c, err, want)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		names := []string{}
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only cursor.json", names)
	}
}

func TestFileCursorCorruptIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cursor.json")
	if err := os.WriteFile(path, []byte(`{"ver":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFileCursor(path).Load(); err == nil {
		t.Fatal("a torn cursor file loaded without error")
	}
}

// TestFileCursorAtomic saves from several goroutines while others load:
// every load must see one whole cursor that some Save wrote.
func TestFileCursorAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cursor.json")
	w, r := NewFileCursor(path), NewFileCursor(path) // two handles, as two processes would
	if err := w.Save(Cursor{Epoch: "e0"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				v := uint64(g*1000 + i)
				if err := w.Save(Cursor{Ver: v, Epoch: epochOf(v)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			c, err := r.Load()
			if err != nil {
				errs <- err
				return
			}
			if c.Epoch != epochOf(c.Ver) {
				t.Errorf("torn cursor: ver %d with epoch %q", c.Ver, c.Epoch)
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func epochOf(v uint64) string {
	if v == 0 {
		return "e0"
	}
	return "e" + string(rune('a'+v%26))
}

func TestMemoryCursor(t *testing.T) {
	var m MemoryCursor
	if c, err := m.Load(); c.Ver != 0 || c.Epoch != "" || err != nil {
		t.Fatalf("zero MemoryCursor = %+v, %v", c, err)
	}
	saved := Cursor{Ver: 7, Epoch: "x", Groups: map[string]GroupCursor{"g": {Seq: 3}}}
	_ = m.Save(saved)
	saved.Groups["g"] = GroupCursor{Seq: 99} // the caller's map is not the store's
	if c, _ := m.Load(); c.Ver != 7 || c.Epoch != "x" || c.Groups["g"].Seq != 3 {
		t.Fatalf("after Save: %+v", c)
	}
}
