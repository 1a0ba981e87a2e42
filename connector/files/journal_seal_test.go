package files

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJournal_ForgedFilesNotBelieved: a sweep's journal says which partitions it has handled
// and which keys it erases. Someone who can write the state dir writes a marker saying a
// partition that holds the subject is clean (its size and mtime right), and rewrites the
// journal's key list: neither is believed without the seal, and the commit refuses rather
// than pass over the partition.
func TestJournal_ForgedFilesNotBelieved(t *testing.T) {
	dir := t.TempDir()
	part := filepath.Join(dir, "p0.jsonl")
	if err := os.WriteFile(part, []byte(`{"user":{"id":"42"}}`+"\n"+`{"user":{"id":"7"}}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Path: dir, Format: "jsonl", Key: Key{Field: "user.id", Identifier: "user_id"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	plan, err := c.Begin(ctx, []string{"42"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(part)
	forged, _ := json.Marshal(marker{Path: "p0.jsonl", State: stateClean, Size: st.Size(), ModNs: st.ModTime().UnixNano()})
	if err := os.WriteFile(c.markerPath(plan.ID, "p0.jsonl"), forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.validMarker(plan.ID, "p0.jsonl"); ok {
		t.Fatal("an unsealed marker was believed")
	}
	if _, err := c.Commit(ctx, plan); err == nil {
		t.Fatal("the commit passed over a partition only a forged marker called clean")
	}
	if b, _ := os.ReadFile(part); !strings.Contains(string(b), `"42"`) {
		t.Fatal("the partition changed")
	}
	// The same marker sealed under the key is believed: the seal is what is checked.
	if err := os.WriteFile(c.markerPath(plan.ID, "p0.jsonl"), c.seal(forged), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.validMarker(plan.ID, "p0.jsonl"); !ok {
		t.Fatal("a sealed marker was not believed")
	}

	// The journal's key list rewritten (the subject dropped for another) is not believed.
	head, _ := json.Marshal(journalHead{ID: plan.ID, Started: plan.started, Keys: []string{"7"}})
	if err := os.WriteFile(filepath.Join(c.journalDir(plan.ID), "sweep.json"), head, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenPlan(ctx, plan.ID); err == nil || !strings.Contains(err.Error(), "without the index key") {
		t.Fatalf("a journal rewritten without the key opened: %v", err)
	}
}
