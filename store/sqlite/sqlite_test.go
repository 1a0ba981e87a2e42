package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"erasure"
	"erasure/audit"
	"erasure/store/sqlite"
	"erasure/store/storetest"
)

func open(t *testing.T, now func() time.Time) *sqlite.DB {
	t.Helper()
	h, _ := audit.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "erasure.db"), sqlite.Options{Hasher: h, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestStore_Conformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) erasure.Store { return open(t, now) })
}

func TestStore_AuditIsAppendOnly(t *testing.T) {
	c := storetest.NewClock()
	db := open(t, c.Now)
	ctx := context.Background()
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := &erasure.AuditEvent{Time: c.Now(), Actor: "t", Type: "test"}
	if err := db.AppendAudit(ctx, tx, ev); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{`UPDATE audit_events SET actor = 'x'`, `DELETE FROM audit_events`} {
		if _, err := db.SQL().ExecContext(ctx, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err %v, want append-only refusal", stmt, err)
		}
	}
}

func TestStore_ReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	h, _ := audit.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	path := filepath.Join(dir, "e.db")
	migrations := func() int {
		raw, _ := sql.Open("sqlite", path)
		defer raw.Close()
		var n int
		raw.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n)
		return n
	}
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{Hasher: h})
	if err != nil {
		t.Fatal(err)
	}
	c := storetest.NewClock()
	_, _, err = db.CreateRequest(context.Background(), erasure.NewRequest{ID: "r_kept", Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "1"}), Reason: "r", Deadline: c.Now().Add(time.Hour), SubmittedBy: "t",
		Tasks: []erasure.TaskSpec{{Dataset: "a", Kind: erasure.TaskErase, Method: erasure.MethodRealtime}}})
	if err != nil {
		t.Fatal(err)
	}
	deployment, err := db.Deployment(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	first := migrations()
	db, err = sqlite.Open(context.Background(), path, sqlite.Options{Hasher: h})
	if err != nil {
		t.Fatalf("reopen (migrations must be idempotent): %v", err)
	}
	defer db.Close()
	if again := migrations(); first < 1 || again != first {
		t.Fatalf("%d migrations recorded after the first open, %d after the second", first, again)
	}
	if r, err := db.Request(context.Background(), "r_kept"); err != nil || len(r.Tasks) != 1 {
		t.Fatalf("request lost across a reopen: %v", err)
	}
	if again, err := db.Deployment(context.Background()); err != nil || again != deployment {
		t.Fatalf("deployment id %q became %q across a reopen (%v)", deployment, again, err)
	}
}
