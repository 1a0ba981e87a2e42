package sqlrecords_test

import (
	"context"
	"database/sql"
	"io"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver

	"erasure"
	"erasure/internal/testenv"
	"erasure/records"
	"erasure/reindex"
	"erasure/store/migrate"
	"erasure/store/sqlrecords"
)

// openPostgres opens the store with the postgres dialect in a fresh schema, dropped after.
func openPostgres(t *testing.T, c *clock) *sqlrecords.Store {
	t.Helper()
	db, err := sql.Open("pgx", testenv.PostgresSchema(t, "records"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE test_audit (seq BIGINT PRIMARY KEY, type TEXT NOT NULL, data TEXT)`); err != nil {
		t.Fatal(err)
	}
	appendAudit := func(ctx context.Context, tx *sql.Tx, ev *erasure.AuditEvent) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO test_audit (seq, type, data) SELECT COALESCE(MAX(seq), 0) + 1, $1, $2 FROM test_audit`, ev.Type, string(ev.Data))
		return err
	}
	s, err := sqlrecords.Open(context.Background(), db, sqlrecords.Options{AppendAudit: appendAudit, Now: c.Now, Dialect: migrate.Postgres})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStore_Postgres runs the property test and a reindex on PostgreSQL: the store's SQL is
// meant to be portable, and this is where it is proven.
func TestStore_Postgres(t *testing.T) {
	t.Run("Property", func(t *testing.T) {
		c := newClock()
		s := openPostgres(t, c)
		runProperty(t, s, c, 11, 120)
	})
	t.Run("ReindexAndCompact", func(t *testing.T) {
		ctx := context.Background()
		c := newClock()
		s := openPostgres(t, c)
		live, _ := loadSource(t, s, c, "alpha", 6000)
		if _, err := s.Archive(ctx, records.ArchiveOptions{Source: "alpha", DeletedBefore: c.Now(), Force: true, Compact: true}); err != nil {
			t.Fatal(err)
		}
		sink := &collectSink{}
		rep, err := reindex.Run(ctx, s, sink, records.ReindexOptions{Source: "alpha", Parallel: 3, BatchRecords: 250})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(sink.ids(t)); n != live || rep.Segments != 3 {
			t.Fatalf("streamed %d in %d segments, want %d in 3", n, rep.Segments, live)
		}
		if _, err := reindex.Run(ctx, s, reindex.NewJSONLSink(io.Discard, nil), records.ReindexOptions{Source: "alpha", IDs: []string{"alpha-00001"}}); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, s)
	})
}
