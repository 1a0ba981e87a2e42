package sqltest

import (
	"strconv"
	"testing"

	"erasure"
)

func testSweep(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(`CREATE TABLE events (user_id BIGINT NOT NULL, kind TEXT, payload TEXT)`)
	e.exec(`CREATE INDEX events_user ON events (user_id)`)
	const users, perUser, queued = 40_000, 5, 10_000 // 200,000 rows; the first 10,000 users are queued
	rows := make([][]any, 0, users*perUser)
	for u := 0; u < users; u++ {
		for k := 0; k < perUser; k++ {
			kind := "click"
			if k == 0 {
				kind = "audit"
			}
			rows = append(rows, []any{u, kind, "p" + strconv.Itoa(u)})
		}
	}
	e.insert("events", []string{"user_id", "kind", "payload"}, rows)
	cfg := e.load(`
  - name: warehouse.events
    owner: data
    connector: sql
    method: offline
    sql: { driver: DRIVER, dsn: "${DSN}", table: events, key: { column: user_id, identifier: user_id }, batch: 2000 }
  - name: warehouse.audit
    owner: data
    connector: sql
    method: offline
    sql:
      driver: DRIVER
      dsn: ${DSN}
      table: events
      key: { column: user_id, identifier: user_id }
      action: redact
      set: { payload: "[erased]" }
      where: [ { column: kind, equals: audit } ]
`)
	sweeper := func(name string) erasure.Sweeper {
		d := cfg.Dataset(name)
		if d.Method != erasure.MethodOffline {
			t.Fatalf("dataset %s: method %s, want offline", name, d.Method)
		}
		s, ok := d.Conn.(erasure.Sweeper)
		if !ok {
			t.Fatalf("dataset %s is not a Sweeper", name)
		}
		return s
	}
	var batch []erasure.SweepSubject
	for u := 0; u < queued; u++ {
		batch = append(batch, erasure.SweepSubject{TaskID: int64(u + 1), Subject: subject("user_id", strconv.Itoa(u))})
	}
	// Subjects that must change nothing: no key, values no row holds or no column can hold.
	batch = append(batch,
		erasure.SweepSubject{TaskID: -1, Subject: subject("email", "a@example.com")},
		erasure.SweepSubject{TaskID: -2, Subject: subject("user_id", "'; DELETE FROM events; --")},
		erasure.SweepSubject{TaskID: -3, Subject: subject("user_id", "999999999")},
	)
	others := e.count("events", "user_id >= ?", queued)

	t.Run("RedactsOnlyRestrictedRows", func(t *testing.T) {
		e := e.sub(t)
		res, err := sweeper("warehouse.audit").Sweep(e.ctx, batch)
		if err != nil {
			t.Fatalf("Sweep: %v", err)
		}
		wantRemoved(t, "sweep", res.Removed, queued) // one audit row per queued user
		if res.PerTask[1] != 1 || res.PerTask[-3] != 0 {
			t.Errorf("per task %d and %d, want 1 redacted row for task 1 and none for task -3", res.PerTask[1], res.PerTask[-3])
		}
		wantCount(t, "redacted audit rows", e.count("events", "payload = ?", "[erased]"), queued)
		wantCount(t, "redacted rows of other users", e.count("events", "payload = ? AND user_id >= ?", "[erased]", queued), 0)
		again, err := sweeper("warehouse.audit").Sweep(e.ctx, batch)
		if err != nil || again.Removed != 0 {
			t.Errorf("second Sweep = %+v, %v; want nothing removed", again, err)
		}
	})
	t.Run("DeletesQueuedSubjects", func(t *testing.T) {
		e := e.sub(t)
		res, err := sweeper("warehouse.events").Sweep(e.ctx, batch)
		if err != nil {
			t.Fatalf("Sweep: %v", err)
		}
		wantRemoved(t, "sweep", res.Removed, queued*perUser)
		// Each task reports its own subject's rows: what tells a subject found from one that
		// was not.
		for _, s := range batch {
			want := int64(perUser)
			if s.TaskID < 0 {
				want = 0
			}
			if got := res.PerTask[s.TaskID]; got != want {
				t.Fatalf("task %d: %d rows removed for its subject, want %d", s.TaskID, got, want)
			}
		}
		wantCount(t, "rows of queued users", e.count("events", "user_id < ?", queued), 0)
		wantCount(t, "rows of other users", e.count("events", "user_id >= ?", queued), others)
		wantCount(t, "other users' payloads intact", e.count("events", "user_id >= ? AND payload LIKE ?", queued, "p%"), others)
		again, err := sweeper("warehouse.events").Sweep(e.ctx, batch)
		if err != nil || again.Removed != 0 {
			t.Errorf("second Sweep = %+v, %v; want nothing removed", again, err)
		}
	})
	t.Run("EmptyBatch", func(t *testing.T) {
		e := e.sub(t)
		res, err := sweeper("warehouse.events").Sweep(e.ctx, nil)
		if err != nil || res.Removed != 0 {
			t.Errorf("Sweep of nothing = %+v, %v", res, err)
		}
		wantCount(t, "rows", e.count("events", ""), others)
	})
}

// testSweepAtomic makes the last chunk of a sweep fail (a foreign key) and checks that the
// chunks before it were rolled back.
func testSweepAtomic(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(`CREATE TABLE accounts (id BIGINT PRIMARY KEY, plan TEXT)`)
	e.exec(`CREATE TABLE invoices (id BIGINT PRIMARY KEY, account_id BIGINT, CONSTRAINT invoices_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id))`)
	var rows [][]any
	for i := 0; i < 4000; i++ {
		rows = append(rows, []any{i, "free"})
	}
	e.insert("accounts", []string{"id", "plan"}, rows)
	e.insert("invoices", []string{"id", "account_id"}, [][]any{{1, 2999}})
	cfg := e.load(`
  - name: warehouse.accounts
    owner: data
    connector: sql
    method: offline
    sql: { driver: DRIVER, dsn: "${DSN}", table: accounts, key: { column: id, identifier: account_id }, batch: 1000 }
`)
	var batch []erasure.SweepSubject
	for i := 0; i < 3000; i++ {
		batch = append(batch, erasure.SweepSubject{TaskID: int64(i), Subject: subject("account_id", strconv.Itoa(i))})
	}
	_, err := cfg.Dataset("warehouse.accounts").Conn.(erasure.Sweeper).Sweep(e.ctx, batch)
	if err == nil || !erasure.IsPermanent(err) {
		t.Fatalf("Sweep over a referenced row = %v, want a permanent error", err)
	}
	wantCount(t, "accounts (the sweep rolled back)", e.count("accounts", ""), 4000)
}

// testSweepExact: a sweep matches keys exactly, whatever the key column's collation (see
// testExactMatch).
func testSweepExact(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	if tg.Driver == "mysql" {
		e.exec(`CREATE TABLE events (uid VARCHAR(64) NOT NULL, kind VARCHAR(16)) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`)
	} else {
		e.exec(`CREATE TABLE events (uid TEXT NOT NULL, kind TEXT)`)
	}
	e.insert("events", []string{"uid", "kind"}, [][]any{{"3", "a"}, {"3", "b"}, {"Alice", "a"}, {"é", "a"}, {"zed", "a"}})
	cfg := e.load(`
  - name: warehouse.events
    owner: data
    connector: sql
    method: offline
    sql: { driver: DRIVER, dsn: "${DSN}", table: events, key: { column: uid, identifier: account_id } }
`)
	s := cfg.Dataset("warehouse.events").Conn.(erasure.Sweeper)
	batch := []erasure.SweepSubject{
		{TaskID: 1, Subject: subject("account_id", "3 ")},
		{TaskID: 2, Subject: subject("account_id", "alice")},
		{TaskID: 3, Subject: subject("account_id", "e")},
		{TaskID: 4, Subject: subject("account_id", "zed")},
	}
	res, err := s.Sweep(e.ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	wantRemoved(t, "sweep of near misses and zed", res.Removed, 1)
	wantCount(t, "rows left", e.count("events", ""), 4)
}
