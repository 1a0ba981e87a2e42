package sqlite_test

import (
	"context"
	"database/sql"
	"os"
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
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "erasure.db"), sqlite.Options{Hasher: storetest.Hasher, Chain: storetest.Chain, Now: now})
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
	ev := &erasure.AuditEvent{Time: c.Now(), Actor: "t", Type: "test", RequestID: "r_1"}
	if err := db.AppendAudit(ctx, tx, ev); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{`UPDATE audit_blocks SET body = '[]'`, `DELETE FROM audit_blocks`, `UPDATE audit_index SET block = 7`, `DELETE FROM audit_index`,
		`INSERT INTO audit_events (seq, at, actor, type, prev_hash, hash) VALUES (99, 0, 'x', 'x', '', '')`} {
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
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{Hasher: h, Chain: h.Chain()})
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
	db, err = sqlite.Open(context.Background(), path, sqlite.Options{Hasher: h, Chain: h.Chain()})
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

// A data dir written before the trail became a chain of blocks: its events stay, verified as
// the legacy part, and the first block chains after the last of them.
func TestStore_LegacyTrailIsKeptAndContinued(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "e.db")
	raw, err := sql.Open("sqlite", sqlite.DSN(path, "FULL"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"001_init.sql", "002_sweeps.sql"} {
		body, err := os.ReadFile(filepath.Join("..", "sqlstore", "migrations", "sqlite", f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if _, err := raw.Exec(`CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL);
		INSERT INTO schema_migrations VALUES ('migrations/001_init.sql', 0), ('migrations/002_sweeps.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	prev := audit.Genesis
	for i := 1; i <= 3; i++ {
		ev := erasure.AuditEvent{Seq: int64(i), Time: time.UnixMilli(1_700_000_000_000), Actor: "old", Type: erasure.EventRequestSubmitted, RequestID: "r_old"}
		audit.LegacySeal(prev, &ev)
		prev = ev.Hash
		if _, err := raw.Exec(`INSERT INTO audit_events (seq, at, actor, type, request_id, task_id, dataset, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, 0, '', '', ?, ?)`,
			ev.Seq, ev.Time.UnixMilli(), ev.Actor, ev.Type, ev.RequestID, ev.PrevHash, ev.Hash); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()

	c := storetest.NewClock()
	db, err := sqlite.Open(ctx, path, sqlite.Options{Hasher: storetest.Hasher, Chain: storetest.Chain, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if head := storetest.VerifyTrail(t, db); head.Block != 0 || head.Events != 3 || head.Hash != prev {
		t.Fatalf("head after the upgrade %+v, want the legacy head (3 events, %s)", head, prev)
	}
	_, _, err = db.CreateRequest(ctx, erasure.NewRequest{ID: "r_new", Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "1"}), Reason: "r",
		Deadline: c.Now().Add(time.Hour), SubmittedBy: "t", Tasks: []erasure.TaskSpec{{Dataset: "a", Kind: erasure.TaskErase, Method: erasure.MethodRealtime}}})
	if err != nil {
		t.Fatal(err)
	}
	head := storetest.VerifyTrail(t, db)
	if head.Block != 1 || head.Events != 4 {
		t.Fatalf("head %+v, want block 1 holding event 4", head)
	}
	evs, err := db.Audit(ctx, erasure.AuditFilter{})
	if err != nil || len(evs) != 4 || evs[2].Block != 0 || evs[3].Block != 1 || evs[3].Seq != 4 || evs[3].RequestID != "r_new" {
		t.Fatalf("events %+v %v", evs, err)
	}
}

func TestStore_Concurrent(t *testing.T) {
	// One process owns a SQLite store: its workers share one handle.
	storetest.RunConcurrent(t, func(t *testing.T, n int, now func() time.Time) []storetest.SweepStore {
		db := open(t, now)
		hs := make([]storetest.SweepStore, n)
		for i := range hs {
			hs[i] = db
		}
		return hs
	})
}

func TestDRPStore_Conformance(t *testing.T) {
	storetest.RunDRP(t, func(t *testing.T, now func() time.Time) storetest.DRPStore { return open(t, now) })
}

func TestStore_AuditTriggersAreRestoredAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "erasure.db")
	storetest.RunAuditTriggers(t, func(t *testing.T, now func() time.Time) storetest.TriggerStore {
		db, err := sqlite.Open(context.Background(), path, sqlite.Options{Hasher: storetest.Hasher, Chain: storetest.Chain, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}, []string{
		`DROP TRIGGER audit_blocks_no_update`,
		`DROP TRIGGER audit_index_no_delete`,
		`DROP TRIGGER audit_checkpoints_no_update`,
		// A trigger of the same name that lets everything through.
		`DROP TRIGGER audit_blocks_no_delete`,
		`CREATE TRIGGER audit_blocks_no_delete BEFORE DELETE ON audit_blocks BEGIN SELECT 1; END`,
	}, []string{"audit_blocks_no_update", "audit_blocks_no_delete", "audit_index_no_delete", "audit_checkpoints_no_update"})
}
