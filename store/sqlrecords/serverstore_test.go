package sqlrecords_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"erasure"
	"erasure/audit"
	"erasure/records"
	"erasure/store/migrate"
	"erasure/store/sqlite"
	"erasure/store/sqlrecords"
)

// TestStore_OnTheServerStore runs the record store inside store/sqlite's database, as `erasure
// serve` does: both migrate into one schema_migrations, the property test holds, and every move's audit event lands in the server's
// hash-chained trail, which still verifies.
func TestStore_OnTheServerStore(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	h, err := audit.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "erasure.db"), sqlite.Options{Hasher: h, Chain: h.Chain(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := sqlrecords.Open(ctx, db.SQL(), sqlrecords.Options{AppendAudit: db.AppendAudit, ReadDB: db.ReadSQL(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	// One tracking table for both: the server store's set and the record store's.
	names, err := migrate.Applied(ctx, db.SQL(), migrate.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, "records/001_records.sql") || !slices.Contains(names, "migrations/001_init.sql") {
		t.Fatalf("schema_migrations holds %v, want the sets of both stores", names)
	}
	runProperty(t, s, c, 21, 150)

	events, err := db.Audit(ctx, erasure.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyTrail(ctx, db, h.Chain()); err != nil {
		t.Fatal(err)
	}
	moves := 0
	for i := range events {
		switch events[i].Type {
		case records.EventArchived, records.EventRestored, records.EventReconciled:
			moves++
		}
	}
	if moves == 0 {
		t.Fatalf("no record store event among %d audit events", len(events))
	}
}
