package sqlrecords_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"erasure"
	"erasure/internal/testenv"
	"erasure/records"
	"erasure/store/migrate"
	"erasure/store/sqlrecords"
	"erasure/store/sqlrecords/sqlrecordstest"
)

func noAudit(context.Context, *sql.Tx, *erasure.AuditEvent) error { return nil }

// TestMigrations_EveryDialectHasTheSameFiles: a migration added for one dialect only would
// leave the other behind.
func TestMigrations_EveryDialectHasTheSameFiles(t *testing.T) {
	list := func(d migrate.Dialect) []string {
		entries, err := os.ReadDir(filepath.Join("migrations", string(d)))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	sqlite, pg := list(migrate.SQLite), list(migrate.Postgres)
	if len(sqlite) == 0 || !slices.Equal(sqlite, pg) {
		t.Fatalf("sqlite has %v, postgres %v", sqlite, pg)
	}
}

// legacyDB makes the state an earlier build left: the schema applied, and tracked in the record
// store's own records_schema_migrations (version, applied_at), with one record in it.
func legacyDB(t *testing.T, db *sql.DB, d migrate.Dialect) {
	t.Helper()
	schema, err := os.ReadFile(filepath.Join("migrations", string(d), "001_records.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE records_schema_migrations (version BIGINT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)`,
		string(schema),
		`INSERT INTO records_schema_migrations (version, applied_at) VALUES (1, 1700000000000)`,
		`INSERT INTO records_live (source, id, version, updated_at, payload) VALUES ('sierra', 'b1', 1, 1700000000000, '{"title":"old"}')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
}

// TestOpen_AdoptsTheEarlierTracking opens databases migrated before the shared runner: the
// schema is not applied again (it would fail), the shared table records it, and the data is
// still there.
func TestOpen_AdoptsTheEarlierTracking(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, db *sql.DB, d migrate.Dialect) {
		legacyDB(t, db, d)
		for range 2 { // and again, once adopted
			s, err := sqlrecords.Open(ctx, db, sqlrecords.Options{AppendAudit: noAudit, Dialect: d})
			if err != nil {
				t.Fatal(err)
			}
			rec, err := s.Get(ctx, "sierra", "b1")
			if err != nil || string(rec.Payload) != `{"title":"old"}` {
				t.Fatalf("the record of the earlier build: %+v, %v", rec, err)
			}
			s.Close()
		}
		names, err := migrate.Applied(ctx, db, d)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(names, "records/001_records.sql") {
			t.Fatalf("schema_migrations holds %v, want records/001_records.sql", names)
		}
	}
	t.Run("SQLite", func(t *testing.T) {
		db, err := sqlrecordstest.OpenDB(filepath.Join(t.TempDir(), "old.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		check(t, db.W, migrate.SQLite)
	})
	t.Run("Postgres", func(t *testing.T) {
		db, err := sql.Open("pgx", testenv.PostgresSchema(t, "records"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		check(t, db, migrate.Postgres)
	})
}

// TestOpen_ConcurrentlyOnPostgres starts several stores at once on one empty schema, as
// several workers starting together would: each opens, and the schema is applied once.
func TestOpen_ConcurrentlyOnPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.PostgresSchema(t, "records")
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*sqlrecords.Store, n)
	start := make(chan struct{})
	for i := range n {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = sqlrecords.Open(ctx, db, sqlrecords.Options{AppendAudit: noAudit, Dialect: migrate.Postgres})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
	}
	if _, _, err := stores[0].Put(ctx, "sierra", records.Write{ID: "b1", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if rec, err := stores[n-1].Get(ctx, "sierra", "b1"); err != nil || rec.Version != 1 {
		t.Fatalf("another store reads %+v, %v", rec, err)
	}
}

func TestOpen_RefusesBadOptions(t *testing.T) {
	ctx := context.Background()
	db, err := sqlrecordstest.OpenDB(filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for name, o := range map[string]sqlrecords.Options{
		"NoAudit":        {},
		"UnknownDialect": {AppendAudit: noAudit, Dialect: "mysql"},
	} {
		if _, err := sqlrecords.Open(ctx, db.W, o); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Errorf("%s: err = %v, want EINVALID", name, err)
		}
	}
	names, err := migrate.Applied(ctx, db.W, migrate.SQLite)
	if err != nil || len(names) != 0 {
		t.Fatalf("refused options migrated: %v, %v", names, err)
	}
}
