package sqlite_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"erasure"
	"erasure/store/sqlite"
	"erasure/store/storetest"
)

func openPolicies(t *testing.T, path string, now func() time.Time, completion erasure.Completion) *sqlite.DB {
	t.Helper()
	db := openUnclosed(t, path, now, completion)
	t.Cleanup(func() { db.Close() })
	return db
}

func openUnclosed(t *testing.T, path string, now func() time.Time, completion erasure.Completion) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{Hasher: storetest.Hasher, Chain: storetest.Chain, Now: now,
		Completion: completion, Suppression: storetest.SuppressionHasher, Escrow: storetest.Escrow})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestPolicyStore_Conformance(t *testing.T) {
	storetest.RunPolicies(t, func(t *testing.T, now func() time.Time, completion erasure.Completion) storetest.PolicyStore {
		return openPolicies(t, filepath.Join(t.TempDir(), "erasure.db"), now, completion)
	})
}

// TestEscrow_DestroyedKeyCannotDecrypt: a sealed subject copied out of the database before its
// month's key is destroyed opens with that key, and with no key the database holds afterwards;
// neither the identifier nor the key is left in the database file.
func TestEscrow_DestroyedKeyCannotDecrypt(t *testing.T) {
	ctx := context.Background()
	c := storetest.NewClock()
	path := filepath.Join(t.TempDir(), "erasure.db")
	db := openUnclosed(t, path, c.Now, erasure.Completion{Escrow: map[string]time.Duration{"profiles": 24 * time.Hour}})
	value := "escrowed-user-31337"
	if _, _, err := db.CreateRequest(ctx, erasure.NewRequest{ID: "r_1", Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: value}),
		Reason: "t", Deadline: c.Now().Add(time.Hour), SubmittedBy: "t",
		Tasks: []erasure.TaskSpec{{Dataset: "profiles", Kind: erasure.TaskErase, Method: erasure.MethodAsync, Keys: []string{"user_id"}}}}); err != nil {
		t.Fatal(err)
	}
	tasks, _ := db.LeaseTasks(ctx, "w", 1, time.Minute)
	if _, err := db.FinishTasks(ctx, []erasure.TaskResult{{TaskID: tasks[0].ID, RequestID: "r_1", Dataset: "profiles", Kind: erasure.TaskErase, Owner: "w", Attempt: 1,
		State: erasure.TaskDone, StartedAt: c.Now(), FinishedAt: c.Now()}}); err != nil {
		t.Fatal(err)
	}
	var sealed, wrapped []byte
	var month string
	if err := db.ReadSQL().QueryRowContext(ctx, `SELECT e.sealed, e.month, k.wrapped FROM escrow e JOIN escrow_keys k USING (dataset, month)`).Scan(&sealed, &month, &wrapped); err != nil {
		t.Fatal(err)
	}
	aad := []byte("erasure-escrow/1\x00profiles\x00" + month + "\x00r_1")
	if plain, err := storetest.Escrow.Open(wrapped, sealed, aad); err != nil || !bytes.Contains(plain, []byte(value)) {
		t.Fatalf("before destruction: %q, %v", plain, err)
	}
	// Another month's key, which survives the destruction of March's.
	c.Add(31 * 24 * time.Hour)
	if _, _, err := db.CreateRequest(ctx, erasure.NewRequest{ID: "r_2", Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "2"}),
		Reason: "t", Deadline: c.Now().Add(time.Hour), SubmittedBy: "t",
		Tasks: []erasure.TaskSpec{{Dataset: "profiles", Kind: erasure.TaskErase, Method: erasure.MethodAsync, Keys: []string{"user_id"}}}}); err != nil {
		t.Fatal(err)
	}
	tasks, _ = db.LeaseTasks(ctx, "w", 1, time.Minute)
	db.FinishTasks(ctx, []erasure.TaskResult{{TaskID: tasks[0].ID, RequestID: "r_2", Dataset: "profiles", Kind: erasure.TaskErase, Owner: "w", Attempt: 1,
		State: erasure.TaskDone, StartedAt: c.Now(), FinishedAt: c.Now()}})
	c.Add(2 * 24 * time.Hour) // past April 1 + 1 day: March's period ended, April's has not
	if n, err := db.DestroyEscrowKeys(ctx); err != nil || n != 1 {
		t.Fatalf("destroyed %d, %v", n, err)
	}
	rows, err := db.ReadSQL().QueryContext(ctx, `SELECT wrapped FROM escrow_keys`)
	if err != nil {
		t.Fatal(err)
	}
	var left int
	for rows.Next() {
		var k []byte
		rows.Scan(&k)
		left++
		if _, err := storetest.Escrow.Open(k, sealed, aad); err == nil {
			t.Fatal("a remaining key opens the destroyed month's escrow")
		}
	}
	rows.Close()
	if left != 1 {
		t.Fatalf("%d keys left, want April's", left)
	}
	if got, destroyed, err := db.OpenEscrow(ctx, "profiles", time.Time{}); err != nil || destroyed != 1 || len(got) != 1 || got[0].RequestID != "r_2" {
		t.Fatalf("open after destruction: %+v destroyed %d, %v", got, destroyed, err)
	}
	db.Close()
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte(value)) {
			t.Errorf("%s holds the identifier in clear", filepath.Base(f))
		}
		if bytes.Contains(b, wrapped) {
			t.Errorf("%s still holds the destroyed wrapped key", filepath.Base(f))
		}
	}
}
