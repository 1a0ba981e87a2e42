package files_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"erasure"
	"erasure/connector/files"
)

// discardSnapshot writes three JSON lines partitions, each holding user 42 twice, user 7 once
// and five other users.
func discardSnapshot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for p := 0; p < 3; p++ {
		var b strings.Builder
		for _, u := range []int{42, 7, 42} {
			fmt.Fprintf(&b, "{\"user_id\":%d,\"p\":%d}\n", u, p)
		}
		for i := 0; i < 5; i++ {
			fmt.Fprintf(&b, "{\"user_id\":%d,\"p\":%d}\n", 100+p*10+i, p)
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("part-%02d.jsonl", p)), []byte(b.String()))
	}
	return dir
}

// interruptSweep leaves the sweep of keys on c as a crash would: every partition prepared
// and, when swapFirst is set, the first one already swapped in. It returns the sweep's id.
func interruptSweep(t *testing.T, c *files.Connector, dir string, swapFirst bool, keys ...string) string {
	t.Helper()
	ctx := context.Background()
	plan, err := c.Begin(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plan.Partitions {
		if _, err := c.RewritePartition(ctx, plan, p); err != nil {
			t.Fatal(err)
		}
	}
	if swapFirst {
		name := plan.Partitions[0].Path
		tmp := filepath.Join(dir, "."+name+".erasure-"+plan.ID[:12]+".tmp")
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return plan.ID
}

func journalHead(dir, id string) string {
	return filepath.Join(dir, ".erasure", "sweeps", id, "sweep.json")
}

// unseal rewrites sweep id's journal head as plain JSON, the format journals had before they
// were sealed.
func unseal(t *testing.T, dir, id string) {
	t.Helper()
	b, err := os.ReadFile(journalHead(dir, id))
	if err != nil {
		t.Fatal(err)
	}
	b = b[:bytes.LastIndexByte(b, '\n')]
	if !bytes.HasPrefix(b, []byte("{")) || !bytes.HasSuffix(b, []byte("}")) {
		t.Fatalf("the journal head is not JSON and a seal: %q", b)
	}
	if err := os.WriteFile(journalHead(dir, id), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func temps(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, name := range names(tree(t, dir)) {
		if strings.Contains(name, ".erasure-") {
			out = append(out, name)
		}
	}
	return out
}

// TestResume_DiscardsJournalsNotBelieved: after an upgrade, a sweep a crash interrupted in the
// middle of its swap left a journal that is not believed (the unsealed format of before, one
// sealed under another key, or a torn one). Resume discards it (its journal and temporary
// files) instead of failing on it, erases nothing on its word, and the subject's next sweep
// removes its rows from every partition, the one already swapped in included.
func TestResume_DiscardsJournalsNotBelieved(t *testing.T) {
	ctx := context.Background()
	otherKey := bytes.Repeat([]byte{0xa5}, 32)
	tests := []struct {
		name   string
		key    []byte // the index key of the process that was interrupted
		damage func(t *testing.T, dir, id string)
	}{
		{"OldFormatUnsealed", testIndexKey, unseal},
		{"SealedUnderAnotherKey", otherKey, func(*testing.T, string, string) {}},
		{"Torn", testIndexKey, func(t *testing.T, dir, id string) {
			b, _ := os.ReadFile(journalHead(dir, id))
			if err := os.WriteFile(journalHead(dir, id), b[:len(b)/2], 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := discardSnapshot(t)
			cfg := files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user_id"}, Workers: 2}
			before := newConn(t, cfg)
			if err := before.SetIndexKey(tt.key); err != nil {
				t.Fatal(err)
			}
			id := interruptSweep(t, before, dir, true, "42")
			tt.damage(t, dir, id)
			if got := temps(t, dir); len(got) != 2 {
				t.Fatalf("temporary files before the resume: %v, want the two not swapped in", got)
			}

			c := newConn(t, cfg)
			if _, err := c.OpenPlan(ctx, id); !erasure.IsPermanent(err) || strings.Contains(err.Error(), "remove ") {
				t.Errorf("OpenPlan of a journal not believed: %v, want a permanent error that asks nothing by hand", err)
			}
			reps, err := c.Resume(ctx)
			if err != nil {
				t.Fatalf("resume stopped at a journal not believed: %v", err)
			}
			if len(reps) != 1 || reps[0].ID != id || !reps[0].Discarded || reps[0].Reason == "" {
				t.Fatalf("reports %+v, want one saying sweep %s was discarded and why", reps, id)
			}
			if r := reps[0]; r.Removed != 0 || r.Rewritten != 0 || len(r.RemovedByKey) != 0 {
				t.Errorf("the discarded sweep reports %d rows removed, %d partitions rewritten, %v per key: want nothing", r.Removed, r.Rewritten, r.RemovedByKey)
			}
			if ids, _ := c.Pending(); len(ids) != 0 {
				t.Errorf("journals left after the resume: %v", ids)
			}
			noLeftovers(t, dir)
			if n := users(t, dir)["42"]; n != 4 {
				t.Errorf("user 42 has %d rows after the resume, want the 4 of the partitions not swapped in", n)
			}

			// The subject's tasks are still queued: its next sweep reads every partition again.
			if res := sweep(t, c, "42"); res.Removed != 4 || res.PerTask[1] != 4 {
				t.Errorf("the next sweep removed %d rows (%v per task), want 4", res.Removed, res.PerTask)
			}
			got := users(t, dir)
			if got["42"] != 0 || got["7"] != 3 || len(got) != 1+15 {
				t.Errorf("rows per user after the next sweep: %v, want no 42 and every other row kept", got)
			}
			noLeftovers(t, dir)
		})
	}
}

// TestResume_IntactJournalAfterADiscardedOne: one interrupted sweep's journal is not believed,
// another's is intact. Resume discards the first and still finishes and commits the second.
func TestResume_IntactJournalAfterADiscardedOne(t *testing.T) {
	ctx := context.Background()
	dir := discardSnapshot(t)
	c := newConn(t, files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user_id"}, Workers: 2})
	damaged := interruptSweep(t, c, dir, false, "42")
	intact := interruptSweep(t, c, dir, false, "7")
	unseal(t, dir, damaged)

	reps, err := c.Resume(ctx)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if len(reps) != 2 {
		t.Fatalf("reports %+v, want two", reps)
	}
	for _, r := range reps {
		switch r.ID {
		case damaged:
			if !r.Discarded || r.Removed != 0 || len(r.RemovedByKey) != 0 {
				t.Errorf("report of the damaged journal %+v, want it discarded and nothing removed", r)
			}
		case intact:
			if r.Discarded || r.Removed != 3 || r.Rewritten != 3 || r.RemovedByKey["7"] != 3 {
				t.Errorf("report of the intact journal %+v, want it committed with user 7's 3 rows removed", r)
			}
		default:
			t.Errorf("report of an unknown sweep %s", r.ID)
		}
	}
	got := users(t, dir)
	if got["7"] != 0 || got["42"] != 6 {
		t.Errorf("rows per user after the resume: %v, want no 7 and the 6 rows of 42", got)
	}
	noLeftovers(t, dir)
	if res := sweep(t, c, "42"); res.Removed != 6 {
		t.Errorf("the next sweep of 42 removed %d rows, want 6", res.Removed)
	}
}

// TestCommitSweep_DiscardsJournalNotBelieved: a shared sweep resumed after an upgrade, every
// unit done under the old, unsealed journal. The commit cannot go on from that journal: it
// discards it and sweeps the batch (which comes from the store, not the journal) again whole,
// instead of failing and leaving the journal, with the keys in clear, for ever.
func TestCommitSweep_DiscardsJournalNotBelieved(t *testing.T) {
	ctx := context.Background()
	dir := discardSnapshot(t)
	c := newConn(t, files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user_id"}, Workers: 2})
	plan, err := c.PlanSweep(ctx, batch("42"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range plan.Units {
		if _, err := c.SweepUnit(ctx, plan.ID, u.Name); err != nil {
			t.Fatal(err)
		}
	}
	unseal(t, dir, plan.ID)

	res, err := newConn(t, files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user_id"}, Workers: 2}).CommitSweep(ctx, plan.ID, batch("42"))
	if err != nil {
		t.Fatalf("commit of a plan whose journal is not believed: %v", err)
	}
	if res.Removed != 6 || res.PerTask[1] != 6 {
		t.Errorf("the commit removed %d rows (%v per task), want 6", res.Removed, res.PerTask)
	}
	if n := users(t, dir)["42"]; n != 0 {
		t.Errorf("user 42 still has %d rows", n)
	}
	noLeftovers(t, dir)
}

// TestCommit_DiscardsJournalsNotBelieved: a journal that is not believed, which no sweep would
// ever reopen (and which, unsealed, holds its keys in clear), goes when any other sweep of the
// snapshot commits, with its temporary files; its subject's rows are left to its own sweep.
func TestCommit_DiscardsJournalsNotBelieved(t *testing.T) {
	dir := discardSnapshot(t)
	c := newConn(t, files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user_id"}, Workers: 2})
	damaged := interruptSweep(t, c, dir, false, "42")
	unseal(t, dir, damaged)
	if res := sweep(t, c, "7"); res.Removed != 3 {
		t.Fatalf("the sweep of 7 removed %d rows, want 3", res.Removed)
	}
	if ids, _ := c.Pending(); len(ids) != 0 {
		t.Errorf("journals left after another sweep committed: %v", ids)
	}
	if _, err := os.Stat(journalHead(dir, damaged)); !os.IsNotExist(err) {
		t.Errorf("the journal not believed is still there (%v)", err)
	}
	noLeftovers(t, dir)
	if got := users(t, dir); got["42"] != 6 || got["7"] != 0 {
		t.Errorf("rows per user: %v, want the 6 rows of 42 kept and none of 7", got)
	}
}
