package sqlrecords_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"erasure/records"
	"erasure/store/sqlrecords"
	"erasure/store/sqlrecords/sqlrecordstest"
)

// clock is an injectable time source that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openAt opens (creating if needed) the store in the SQLite database at path.
func openAt(t testing.TB, path string, now func() time.Time, opts sqlrecords.Options) (*sqlrecords.Store, *sqlrecordstest.DB) {
	t.Helper()
	opts.Now = now
	return sqlrecordstest.Open(t, path, opts)
}

func openStore(t testing.TB, c *clock) (*sqlrecords.Store, *sqlrecordstest.DB) {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "erasure.db"), c.Now, sqlrecords.Options{})
}

func mustVerify(t testing.TB, s *sqlrecords.Store) *records.VerifyReport {
	t.Helper()
	rep, err := s.Verify(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("verify found problems: %v", rep.Problems)
	}
	return rep
}
