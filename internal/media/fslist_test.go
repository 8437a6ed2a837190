package media

import (
	"os"
	"slices"
	"testing"
)

// TestFSObjectsAndParts: a read-only FS lists committed objects and their
// parts (HLS ones included), not staging left by a crash, and changes
// nothing.
func TestFSObjectsAndParts(t *testing.T) {
	dir := t.TempDir()
	f, err := OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := NewID()
	st, err := f.Create(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{PartData, PartHLS + "index.m3u8", PartHLS + "seg00001.ts"} {
		w, err := st.Create(part)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(part))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Commit(t.Context(), Info{ID: id, Owner: "alice", Size: 4, Type: "video/mp4", HLS: true}); err != nil {
		t.Fatal(err)
	}
	crashed, err := f.Create(t.Context(), NewID()) // staged, never committed
	if err != nil {
		t.Fatal(err)
	}
	_ = crashed

	ro := OpenFSReadOnly(dir)
	ids, err := ro.Objects()
	if err != nil || !slices.Equal(ids, []string{id}) {
		t.Fatalf("objects %v %v, want [%s]", ids, err, id)
	}
	parts, err := ro.Parts(id)
	if err != nil || !slices.Equal(parts, []string{"data", "hls/index.m3u8", "hls/seg00001.ts"}) {
		t.Fatalf("parts %v %v", parts, err)
	}
	if _, err := ro.Create(t.Context(), NewID()); err == nil {
		t.Fatal("a read-only FS staged an upload")
	}
	if tmp, _ := os.ReadDir(dir + "/tmp"); len(tmp) != 1 {
		t.Fatalf("staging left by the crash: %d entries, want it untouched", len(tmp))
	}
	if ids, err := OpenFSReadOnly(dir + "/none").Objects(); err != nil || ids != nil {
		t.Fatalf("objects of a missing dir: %v %v", ids, err)
	}
}
