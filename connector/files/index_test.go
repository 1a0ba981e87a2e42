package files_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"erasure/connector/files"
)

// TestSkipIndex_NoSidecarOutlivesItsPartition: a sidecar holds a hash of every key of its
// partition, so a commit removes those of partitions that no longer exist and the leftovers
// of unfinished writes, and one that rewrites a partition with the index off removes its
// sidecar; after the sweep no file of the state dir holds the erased key's hash.
func TestSkipIndex_NoSidecarOutlivesItsPartition(t *testing.T) {
	dir := t.TempDir()
	row := func(id string) line { return line{`{"user":{"id":"` + id + `"}}` + "\n", false} }
	writeFile(t, filepath.Join(dir, "p0.jsonl"), content([]line{row("42"), row("7")}, false))
	writeFile(t, filepath.Join(dir, "p1.jsonl"), content([]line{row("42"), row("8")}, false))
	writeFile(t, filepath.Join(dir, "day=2/p2.jsonl"), content([]line{row("9"), row("77")}, false))
	cfg := files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user.id"}, Index: true}
	c := newConn(t, cfg)
	ctx := context.Background()
	if rep, err := c.BuildIndex(ctx, nil); err != nil || rep.Built != 3 {
		t.Fatalf("BuildIndex = %+v, %v", rep, err)
	}
	index := filepath.Join(dir, ".erasure", "index")
	exists := func(rel string) bool {
		_, err := os.Stat(filepath.Join(index, rel))
		return err == nil
	}
	// The owner deletes p1 (which held key 42); two writes of p2's sidecar were cut short,
	// one long ago, one (another worker's) a moment ago.
	if err := os.Remove(filepath.Join(dir, "p1.jsonl")); err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(index, "day=2", "p2.jsonl.idx.111.new"), filepath.Join(index, "day=2", "p2.jsonl.idx.222.new")
	writeFile(t, old, []byte("leftover"))
	writeFile(t, fresh, []byte("in progress"))
	long := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}

	if res := sweep(t, c, "42"); res.Removed != 1 {
		t.Fatalf("removed %d rows, want 1 (p0's)", res.Removed)
	}
	for rel, want := range map[string]bool{"p0.jsonl.idx": true, "p1.jsonl.idx": false, "day=2/p2.jsonl.idx": true,
		"day=2/p2.jsonl.idx.111.new": false, "day=2/p2.jsonl.idx.222.new": true} {
		if exists(rel) != want {
			t.Errorf("%s exists: %v, want %v", rel, !want, want)
		}
	}
	sum := binary.LittleEndian.AppendUint64(nil, xxhash.Sum64String("42"))
	filepath.WalkDir(filepath.Join(dir, ".erasure"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, sum) {
				t.Errorf("%s holds the erased key's hash", p)
			}
		}
		return nil
	})

	// The index turned off: a rewritten partition's old sidecar goes with the keys it named.
	cfg.Index = false
	off := newConn(t, cfg)
	if res := sweep(t, off, "77"); res.Removed != 1 {
		t.Fatalf("removed %d rows, want 1 (p2's)", res.Removed)
	}
	if exists("day=2/p2.jsonl.idx") {
		t.Error("p2's sidecar survived a rewrite with the index off")
	}
	if !exists("p0.jsonl.idx") {
		t.Error("p0's sidecar, whose partition was not rewritten, was removed")
	}
}
