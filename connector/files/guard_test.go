package files_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"erasure"
	"erasure/connector/files"
)

// guardFixture writes a snapshot in format: users 1..9 with rows per user as counts says, in
// two partitions, and returns the row counts per partition file.
func guardFixture(t *testing.T, dir, format string, counts map[string]int) {
	t.Helper()
	var a, b strings.Builder
	header := "user_id,n\n"
	if format == "csv" {
		a.WriteString(header)
		b.WriteString(header)
	}
	i := 0
	for _, u := range []string{"1", "2", "3", "4", "5", "6", "7", "8", "9"} {
		for j := 0; j < counts[u]; j++ {
			w := &a
			if i%2 == 1 {
				w = &b
			}
			i++
			if format == "csv" {
				fmt.Fprintf(w, "%s,%d\n", u, j)
			} else {
				fmt.Fprintf(w, `{"user_id":%q,"n":%d}`+"\n", u, j)
			}
		}
	}
	writeFile(t, filepath.Join(dir, "p1."+format), []byte(a.String()))
	writeFile(t, filepath.Join(dir, "p2."+format), []byte(b.String()))
}

// TestSweep_Guard: a subject matching more rows than max_removed stops the sweep before
// anything is swapped and is named by its task; a subject forced past the guard is not held to
// it; a sweep dropping more than max_removed_share of a partition is stopped, naming it.
func TestSweep_Guard(t *testing.T) {
	for _, format := range []string{"jsonl", "csv"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			guardFixture(t, dir, format, map[string]int{"1": 3, "2": 30, "3": 25, "9": 80})
			c := newConn(t, files.Config{Path: dir, Format: format, Key: files.Key{Field: "user_id"}})
			before := tree(t, dir)
			subjects := batch("1", "2", "3")
			subjects[2].OverrideGuard = true
			guarded := erasure.ContextWithGuard(context.Background(), erasure.Guard{MaxRemoved: 10})

			_, err := c.Sweep(guarded, subjects)
			g, ok := erasure.AsGuardError(err)
			if !ok || !erasure.IsPermanent(err) || len(g.Tasks) != 1 || g.Tasks[0] != subjects[1].TaskID || g.Count != 30 {
				t.Fatalf("err %v (%+v): want a guard error naming task %d with 30 rows", err, g, subjects[1].TaskID)
			}
			if !strings.Contains(err.Error(), "30 rows") || !strings.Contains(err.Error(), "max_removed 10") {
				t.Fatalf("message %q", err)
			}
			after := tree(t, dir)
			for name, b := range before {
				if string(after[name]) != string(b) {
					t.Fatalf("%s changed by a refused sweep", name)
				}
			}
			noLeftovers(t, dir)

			res, err := c.Sweep(guarded, []erasure.SweepSubject{subjects[0], subjects[2]})
			if err != nil || res.Removed != 28 {
				t.Fatalf("sweep of the others: %+v, %v; want 28 rows (3 + 25 forced)", res, err)
			}
			t.Run("ShareOfAPartition", func(t *testing.T) {
				// Left: user 2 (30 rows) and user 9 (80): erasing 9 drops 40 of the 55 rows of each partition.
				share := erasure.ContextWithGuard(context.Background(), erasure.Guard{MaxRemovedShare: 0.5, ShareMinRows: 20})
				before := tree(t, dir)
				_, err := c.Sweep(share, batch("9"))
				// Both partitions are over; the first to finish its rewrite is named.
				if g, ok := erasure.AsGuardError(err); !ok || !strings.Contains(err.Error(), "partition p") || !strings.Contains(err.Error(), "."+format) || g.Count != 40 || g.Rows != 55 {
					t.Fatalf("err %v: want a guard error naming a partition, 40 of 55 rows", err)
				}
				after := tree(t, dir)
				for name, b := range before {
					if string(after[name]) != string(b) {
						t.Fatalf("%s changed by a refused sweep", name)
					}
				}
				noLeftovers(t, dir)
				if res, err := c.Sweep(share, batch("2")); err != nil || res.Removed != 30 {
					t.Fatalf("a quarter of each partition: %+v, %v", res, err)
				}
			})
		})
	}
	t.Run("parquet", func(t *testing.T) {
		dir := t.TempDir()
		writeParquet(t, filepath.Join(dir, "a.parquet"), events()) // 8 rows of 42, 7 of 7

		c := newConn(t, files.Config{Path: dir, Format: "parquet", Key: files.Key{Field: "user.id"}})
		before := tree(t, dir)
		_, err := c.Sweep(erasure.ContextWithGuard(context.Background(), erasure.Guard{MaxRemoved: 6}), batch("42", "7"))
		if g, ok := erasure.AsGuardError(err); !ok || len(g.Tasks) != 2 || g.Count != 8 || !strings.Contains(err.Error(), "tasks 1, 2") {
			t.Fatalf("err %v: want both subjects over the limit, up to 8 rows", err)
		}
		if after := tree(t, dir); string(after["a.parquet"]) != string(before["a.parquet"]) {
			t.Fatal("the partition changed")
		}
		if res, err := c.Sweep(erasure.ContextWithGuard(context.Background(), erasure.Guard{MaxRemoved: 8}), batch("42", "7")); err != nil || res.Removed != 15 {
			t.Fatalf("sweep within the limit: %+v, %v", res, err)
		}
	})
}
