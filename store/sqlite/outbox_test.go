package sqlite_test

import (
	"testing"
	"time"

	"erasure/store/storetest"
)

func TestOutboxStore_Conformance(t *testing.T) {
	storetest.RunOutbox(t, func(t *testing.T, now func() time.Time) storetest.OutboxStore { return open(t, now) })
}

func TestOutboxStore_Concurrent(t *testing.T) {
	// One process owns a SQLite store: its deliverers share one handle.
	storetest.RunOutboxConcurrent(t, func(t *testing.T, n int, now func() time.Time) []storetest.OutboxStore {
		db := open(t, now)
		hs := make([]storetest.OutboxStore, n)
		for i := range hs {
			hs[i] = db
		}
		return hs
	})
}
