package files_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"erasure/connector/files"
)

var jsonFixture = []line{
	{`{"user":{"id":"42","name":"erased, string key"},"n":1}` + "\n", true},
	{`{"user":{"id":43,"name":"kept"},"n":2}` + "\n", false},
	{`{"user":{"id":42},"n":3,"note":"erased: numeric key 42 matches \"42\""}` + "\n", true},
	{`  { "n" : 4 , "user" : { "name":"x}\"{", "id" : 4.2e1 } }` + "\n", true},
	{`{"us\u0065r":{"id":"7"},"n":5}` + "\n", true},
	{`{"user":{"id":"7x"},"n":6}` + "\n", false},
	{`{"user":null,"n":7}` + "\n", false},
	{"\n", false},
	{`{"n":8,"tags":["42",{"id":"42"}],"user":{"id":"٤٢ unicode"}}` + "\n", false},
	{`{"user":{"profile":{"id":"42"}},"n":9}` + "\n", false},
	{`{"user":{"id":"a\"quoted\"b"},"n":10}` + "\n", true},
	{`{"user":{"id":"42"},"n":11,"last line has no newline":true}`, true},
}

func TestSweep_JSONLines(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.jsonl"), content(jsonFixture, false))
	writeFile(t, filepath.Join(dir, "day=2/b.jsonl.gz"), content(jsonFixture, false))
	untouched := []line{{`{"user":{"id":"1"}}` + "\n", false}, {`{"user":{"id":"2"}}` + "\n", false}}
	writeFile(t, filepath.Join(dir, "c.jsonl"), content(untouched, false))
	writeFile(t, filepath.Join(dir, ".a.jsonl.erasure-0123456789ab.tmp"), []byte("not json at all\n"))
	writeFile(t, filepath.Join(dir, "_SUCCESS"), nil)
	writeFile(t, filepath.Join(dir, "notes.txt"), []byte("not a partition"))
	old := age(t, filepath.Join(dir, "c.jsonl"))
	c := newConn(t, files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user.id"}})
	ctx := context.Background()

	before, err := c.Holds(ctx, batch("a\"quoted\"b")[0].Subject)
	if err != nil || !before {
		t.Fatalf("Holds before the sweep = %v, %v; want true", before, err)
	}
	var last files.Progress
	res, err := c.Sweep(files.ContextWithProgress(ctx, func(p files.Progress) { last = p }), batch("42", "7", "a\"quoted\"b", "absent"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("EachTaskGetsTheRowsRemovedForItsSubject", func(t *testing.T) {
		// 42: four rows in each of two partitions; 7 and a"quoted"b: one each; absent: none.
		want := map[int64]int64{1: 8, 2: 2, 3: 2, 4: 0}
		for task, n := range want {
			if res.PerTask[task] != n {
				t.Errorf("task %d: %d rows removed, want %d (all: %v)", task, res.PerTask[task], n, res.PerTask)
			}
		}
	})
	t.Run("ErasesExactlyTheSubjectsRowsKeepingTheRestByteForByte", func(t *testing.T) {
		want := content(jsonFixture, true)
		for _, name := range []string{"a.jsonl", "day=2/b.jsonl.gz"} {
			if got := readFile(t, filepath.Join(dir, name)); string(got) != string(want) {
				t.Errorf("%s =\n%s\nwant\n%s", name, got, want)
			}
		}
		if res.Removed != 12 || res.Partitions != 3 {
			t.Errorf("result = %+v, want 12 rows removed from 3 partitions", res)
		}
	})
	t.Run("LeavesPartitionsWithoutAMatchUntouched", func(t *testing.T) {
		if got := mtime(t, filepath.Join(dir, "c.jsonl")); !got.Equal(old) {
			t.Errorf("c.jsonl mtime changed: %v, was %v", got, old)
		}
	})
	t.Run("IgnoresTemporaryAndHiddenFiles", func(t *testing.T) {
		if got := readFile(t, filepath.Join(dir, ".a.jsonl.erasure-0123456789ab.tmp")); string(got) != "not json at all\n" {
			t.Errorf("foreign temporary file changed")
		}
		parts, err := c.Partitions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range parts {
			got = append(got, p.Path)
		}
		if want := []string{"a.jsonl", "c.jsonl", "day=2/b.jsonl.gz"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Errorf("partitions = %v, want %v", got, want)
		}
	})
	t.Run("ReportsProgress", func(t *testing.T) {
		if last.PartitionsDone != 3 || last.PartitionsTotal != 3 || last.RowsRemoved != 12 || last.BytesDone != last.BytesTotal || last.BytesRead == 0 {
			t.Errorf("last progress = %+v", last)
		}
	})
	t.Run("VerifiesTheSubjectIsGone", func(t *testing.T) {
		for _, v := range []string{"42", "7", "a\"quoted\"b"} {
			if held, err := c.Holds(ctx, batch(v)[0].Subject); err != nil || held {
				t.Errorf("Holds(%q) after the sweep = %v, %v", v, held, err)
			}
		}
		if held, _ := c.Holds(ctx, batch("43")[0].Subject); !held {
			t.Errorf("Holds(43) = false, want true")
		}
	})
	t.Run("IsIdempotent", func(t *testing.T) {
		snap := tree(t, dir)
		times := map[string]time.Time{}
		for _, n := range []string{"a.jsonl", "c.jsonl", "day=2/b.jsonl.gz"} {
			times[n] = mtime(t, filepath.Join(dir, n))
		}
		again := sweep(t, c, "42", "7", "a\"quoted\"b", "absent")
		if again.Removed != 0 {
			t.Errorf("second sweep removed %d rows", again.Removed)
		}
		after := tree(t, dir)
		for _, n := range names(snap) {
			if string(snap[n]) != string(after[n]) {
				t.Errorf("%s changed on the second sweep", n)
			}
		}
		for n, m := range times {
			if got := mtime(t, filepath.Join(dir, n)); !got.Equal(m) {
				t.Errorf("%s rewritten by the second sweep (mtime %v, was %v)", n, got, m)
			}
		}
	})
	noLeftovers(t, dir)
	if _, err := os.Stat(filepath.Join(dir, ".a.jsonl.erasure-0123456789ab.tmp")); err != nil {
		t.Errorf("a temporary file of no sweep of ours was removed: %v", err)
	}
}
