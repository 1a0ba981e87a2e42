package files_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
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

// TestSkipIndex_Keyed: sidecars hold keyed hashes only (no xxhash64 of any key the partitions
// hold), serve every connector of the same index key, and are not trusted (made again) by a
// connector with another.
func TestSkipIndex_Keyed(t *testing.T) {
	dir := t.TempDir()
	row := func(id string) line { return line{`{"user":{"id":"` + id + `"}}` + "\n", false} }
	writeFile(t, filepath.Join(dir, "p0.jsonl"), content([]line{row("42"), row("7")}, false))
	writeFile(t, filepath.Join(dir, "p1.jsonl"), content([]line{row("8")}, false))
	cfg := files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user.id"}, Index: true}
	key := bytes.Repeat([]byte{7}, 32)
	open := func(key []byte) *files.Connector {
		c := newConn(t, cfg)
		if key != nil {
			if err := c.SetIndexKey(key); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	ctx := context.Background()
	a := open(key)
	if rep, err := a.BuildIndex(ctx, nil); err != nil || rep.Built != 2 {
		t.Fatalf("BuildIndex = %+v, %v", rep, err)
	}
	for _, v := range []string{"42", "7", "8"} {
		sum := binary.LittleEndian.AppendUint64(nil, xxhash.Sum64String(v))
		filepath.WalkDir(filepath.Join(dir, ".erasure"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, _ := os.ReadFile(p); bytes.Contains(b, sum) {
					t.Errorf("%s holds the unkeyed hash of %s", p, v)
				}
			}
			return nil
		})
	}
	if rep, _ := open(key).BuildIndex(ctx, nil); rep.Built != 0 || rep.Current != 2 {
		t.Errorf("another connector with the same key: %+v, want both sidecars current", rep)
	}
	if rep, _ := open(nil).BuildIndex(ctx, nil); rep.Built != 2 {
		t.Errorf("a connector with a key of its own: %+v, want both sidecars made again", rep)
	}
	if err := a.SetIndexKey([]byte("short")); err == nil {
		t.Error("a 5-byte index key was taken")
	}
	// a's key is still its own: the sidecars the last connector made are not a's.
	if res := sweep(t, a, "42"); res.Removed != 1 {
		t.Fatalf("removed %d rows, want 1", res.Removed)
	}
}

// TestSkipIndex_OldFormatRemoved: a sidecar of the first format (unkeyed hashes) goes at the
// next commit, even with the index off, where nothing would rewrite it.
func TestSkipIndex_OldFormatRemoved(t *testing.T) {
	dir := t.TempDir()
	row := func(id string) line { return line{`{"user":{"id":"` + id + `"}}` + "\n", false} }
	writeFile(t, filepath.Join(dir, "p0.jsonl"), content([]line{row("42")}, false))
	writeFile(t, filepath.Join(dir, "p1.jsonl"), content([]line{row("8")}, false))
	old := filepath.Join(dir, ".erasure", "index", "p1.jsonl.idx")
	writeFile(t, old, append([]byte("ERSKIX01"), binary.LittleEndian.AppendUint64(nil, xxhash.Sum64String("8"))...))
	c := newConn(t, files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user.id"}})
	if res := sweep(t, c, "42"); res.Removed != 1 {
		t.Fatalf("removed %d rows, want 1", res.Removed)
	}
	if _, err := os.Stat(old); err == nil {
		t.Fatal("the first format's sidecar of p1 survived the commit")
	}
}

// TestSkipIndex_ForgedSidecarNotTrusted: someone who can write the state dir replaces a
// partition's sidecar with one that lists no key (its header copied from a real one, so it
// names the key and matches the partition): without the key the seal cannot be made, the
// sidecar is not trusted, and the sweep still reads the partition and removes the subject.
func TestSkipIndex_ForgedSidecarNotTrusted(t *testing.T) {
	dir := t.TempDir()
	row := func(id string) line { return line{`{"user":{"id":"` + id + `"}}` + "\n", false} }
	writeFile(t, filepath.Join(dir, "p0.jsonl"), content([]line{row("42"), row("7")}, false))
	c := newConn(t, files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user.id"}, Index: true})
	if rep, err := c.BuildIndex(context.Background(), nil); err != nil || rep.Built != 1 {
		t.Fatalf("BuildIndex = %+v, %v", rep, err)
	}
	side := filepath.Join(dir, ".erasure", "index", "p0.jsonl.idx")
	real, err := os.ReadFile(side)
	if err != nil {
		t.Fatal(err)
	}
	// The real header (magic, key id, size, mtime, sample), a count of 0, and a trailer
	// anyone can compute: a CRC-32C (4 bytes, as the earlier format had; 8) or an unkeyed
	// hash of the body.
	forged := append(append([]byte{}, real[:36]...), 0, 0, 0, 0)
	crc := crc32.Checksum(forged, crc32.MakeTable(crc32.Castagnoli))
	for _, trailer := range [][]byte{
		binary.LittleEndian.AppendUint32(nil, crc),
		binary.LittleEndian.AppendUint64(nil, uint64(crc)),
		binary.LittleEndian.AppendUint64(nil, xxhash.Sum64(forged)),
	} {
		if err := os.WriteFile(side, append(append([]byte{}, forged...), trailer...), 0o600); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(filepath.Join(dir, "p0.jsonl"))
		os.Chtimes(side, st.ModTime(), st.ModTime())
		if res := sweep(t, c, "42"); res.Removed != 1 {
			t.Fatalf("removed %d rows, want 1: a forged sidecar made the sweep skip the partition", res.Removed)
		}
		writeFile(t, filepath.Join(dir, "p0.jsonl"), content([]line{row("42"), row("7")}, false))
	}
}
