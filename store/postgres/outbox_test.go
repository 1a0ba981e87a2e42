package postgres_test

import (
	"context"
	"testing"
	"time"

	"erasure/internal/testenv"
	"erasure/store/postgres"
	"erasure/store/storetest"
)

func TestOutboxStore_Conformance(t *testing.T) {
	storetest.RunOutbox(t, func(t *testing.T, now func() time.Time) storetest.OutboxStore { return open(t, now) })
}

func TestOutboxStore_Concurrent(t *testing.T) {
	// Each deliverer, notifier or watcher is a process of its own: its own pool on the schema.
	storetest.RunOutboxConcurrent(t, func(t *testing.T, n int, now func() time.Time) []storetest.OutboxStore {
		dsn := testenv.PostgresSchema(t, "outbox")
		hs := make([]storetest.OutboxStore, n)
		for i := range hs {
			db, err := postgres.Open(context.Background(), dsn, postgres.Options{Hasher: storetest.Hasher, Chain: storetest.Chain, Now: now, MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			hs[i] = db
		}
		return hs
	})
}
