package client

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestFileCursorMissingIsZero(t *testing.T) {
	f := NewFileCursor(filepath.Join(t.TempDir(), "none", "cursor.json"))
	ver, epoch, err := f.Load()
	if err != nil || ver != 0 || epoch != "" {
		t.Fatalf("Load of a missing file = %d, %q, %v", ver, epoch, err)
	}
}

func TestFileCursorSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "home", "cursor.json")
	if err := NewFileCursor(path).Save(42, "ep-1"); err != nil {
		t.Fatal(err)
	}
	if err := NewFileCursor(path).Save(43, "ep-2"); err != nil {
		t.Fatal(err)
	}
	ver, epoch, err := NewFileCursor(path).Load()
	if err != nil || ver != 43 || epoch != "ep-2" {
		t.Fatalf("after reopen: %d, %q, %v; want 43, ep-2", ver, epoch, err)
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
	if _, _, err := NewFileCursor(path).Load(); err == nil {
		t.Fatal("a torn cursor file loaded without error")
	}
}

// TestFileCursorAtomic saves from several goroutines while others load:
// every load must see one whole cursor that some Save wrote.
func TestFileCursorAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cursor.json")
	w, r := NewFileCursor(path), NewFileCursor(path) // two handles, as two processes would
	if err := w.Save(0, "e0"); err != nil {
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
				if err := w.Save(v, epochOf(v)); err != nil {
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
			v, e, err := r.Load()
			if err != nil {
				errs <- err
				return
			}
			if e != epochOf(v) {
				t.Errorf("torn cursor: ver %d with epoch %q", v, e)
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
	if v, e, err := m.Load(); v != 0 || e != "" || err != nil {
		t.Fatalf("zero MemoryCursor = %d, %q, %v", v, e, err)
	}
	_ = m.Save(7, "x")
	if v, e, _ := m.Load(); v != 7 || e != "x" {
		t.Fatalf("after Save(7, x): %d, %q", v, e)
	}
}
