package postgres_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"erasure"
	"erasure/internal/testenv"
	"erasure/store/postgres"
	"erasure/store/storetest"
)

// open opens a store on a fresh schema of the test server, dropped when the test ends.
func open(t *testing.T, now func() time.Time) *postgres.DB {
	t.Helper()
	return openOn(t, testenv.PostgresSchema(t, "store"), now, 0)
}

// openOn opens a store (a pool of maxConns, 0 for the default) on the schema of dsn, closed
// when the test ends.
func openOn(t *testing.T, dsn string, now func() time.Time, maxConns int) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), dsn, postgres.Options{Hasher: storetest.Hasher, Chain: storetest.Chain, Now: now, MaxConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestStore_Conformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) erasure.Store { return open(t, now) })
}

func TestSweepStore_Conformance(t *testing.T) {
	storetest.RunSweeps(t, func(t *testing.T, now func() time.Time) storetest.SweepStore { return open(t, now) })
}

func TestStore_Concurrent(t *testing.T) {
	// Each worker is a process of its own: its own pool on the same schema.
	storetest.RunConcurrent(t, func(t *testing.T, n int, now func() time.Time) []storetest.SweepStore {
		dsn := testenv.PostgresSchema(t, "conc")
		hs := make([]storetest.SweepStore, n)
		for i := range hs {
			hs[i] = openOn(t, dsn, now, 4)
		}
		return hs
	})
}

func TestDRPStore_Conformance(t *testing.T) {
	storetest.RunDRP(t, func(t *testing.T, now func() time.Time) storetest.DRPStore { return open(t, now) })
}

func TestGuards_Conformance(t *testing.T) {
	storetest.RunGuards(t, func(t *testing.T, now func() time.Time) storetest.GuardStore { return open(t, now) })
}

func TestPolicyStore_Conformance(t *testing.T) {
	storetest.RunPolicies(t, func(t *testing.T, now func() time.Time, completion erasure.Completion) storetest.PolicyStore {
		dsn := testenv.PostgresSchema(t, "pol")
		db, err := postgres.Open(context.Background(), dsn, postgres.Options{Hasher: storetest.Hasher, Chain: storetest.Chain, Now: now,
			Completion: completion, Suppression: storetest.SuppressionHasher, Escrow: storetest.Escrow})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

func TestStore_FinishBesideHeldRequest(t *testing.T) {
	dsn := testenv.PostgresSchema(t, "held")
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	storetest.RunFinishBesideHeldRequest(t, func(t *testing.T, now func() time.Time) erasure.Store {
		return openOn(t, dsn, now, 4)
	}, func(t *testing.T, id string) func() {
		// Another process's transaction, as its finish of the request holds it.
		tx, err := raw.BeginTx(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := tx.QueryRow(`SELECT id FROM requests WHERE id = $1 FOR UPDATE`, id).Scan(&got); err != nil {
			tx.Rollback()
			t.Fatal(err)
		}
		return func() { tx.Rollback() }
	})
}

func TestStore_AuditTriggersAreRestoredAtOpen(t *testing.T) {
	dsn := testenv.PostgresSchema(t, "triggers")
	storetest.RunAuditTriggers(t, func(t *testing.T, now func() time.Time) storetest.TriggerStore {
		return openOn(t, dsn, now, 2)
	}, []string{
		`DROP TRIGGER audit_blocks_no_update ON audit_blocks`,
		`ALTER TABLE audit_index DISABLE TRIGGER audit_index_no_update`,
		`DROP TRIGGER audit_checkpoints_no_update ON audit_checkpoints`,
		`DROP TRIGGER audit_blocks_no_truncate ON audit_blocks`,
		// The function every trigger calls, made to let everything through.
		`CREATE OR REPLACE FUNCTION erasure_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
	}, []string{"erasure_append_only()", "audit_blocks_no_update", "audit_blocks_no_truncate", "audit_index_no_update", "audit_checkpoints_no_update"})
}
