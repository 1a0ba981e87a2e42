package sqltest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"erasure"
)

// The policy cases: the hide action, retention and replay.

// RunPolicies runs the policy cases against tg.
func RunPolicies(t *testing.T, tg Target) {
	t.Run("Hide", func(t *testing.T) { testHide(t, tg) })
	t.Run("RetentionByTimestamp", func(t *testing.T) { testRetention(t, tg, "timestamp") })
	t.Run("RetentionByUnixSeconds", func(t *testing.T) { testRetention(t, tg, "unix") })
	t.Run("ReplayAfterRestore", func(t *testing.T) { testReplay(t, tg) })
}

func testHide(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	e.insert("users", userCols, [][]any{user(42, "a@example.com"), user(42, "b@example.com"), user(1, "c@example.com")})
	cfg := e.load(`
  - name: app.users
    owner: app
    connector: sql
    sql:
      driver: DRIVER
      dsn: "${DSN}"
      table: users
      key: { column: id, identifier: user_id }
      hide: { set: { status: hidden }, columns: [name] }
`)
	h, ok := cfg.Dataset("app.users").Conn.(erasure.Hider)
	if !ok || !h.Hides() {
		t.Fatal("a dataset with a hide block is not a Hider that hides")
	}
	out, err := h.Hide(e.ctx, subject("user_id", "42"))
	if err != nil || out.Removed != 2 {
		t.Fatalf("Hide = %+v, %v", out, err)
	}
	wantCount(t, "hidden rows", e.count("users", "status = 'hidden' AND name IS NULL"), 2)
	wantCount(t, "rows of user 42", e.count("users", "id = ?", 42), 2)
	wantCount(t, "other rows untouched", e.count("users", "id = ? AND status = 'active' AND name IS NOT NULL", 1), 1)
	if err := cfg.Dataset("app.users").Conn.(erasure.Checker).Check(e.ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	plain := e.load(`
  - name: plain
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id } }
`)
	if plain.Dataset("plain").Conn.(erasure.Hider).Hides() {
		t.Fatal("a dataset without a hide block hides")
	}
}

// tableChecksum is a SHA-256 of the table's rows (id, payload) in id order, and their count.
func (e *env) tableChecksum(table string) (string, int64) {
	e.t.Helper()
	rows, err := e.db.QueryContext(e.ctx, "SELECT id, payload FROM "+table+" ORDER BY id")
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	h := sha256.New()
	var n int64
	for rows.Next() {
		var id int64
		var payload string
		if err := rows.Scan(&id, &payload); err != nil {
			e.t.Fatal(err)
		}
		fmt.Fprintf(h, "%d|%s\n", id, payload)
		n++
	}
	return fmt.Sprintf("%x", h.Sum(nil)), n
}

// testRetention: exactly the rows older than the cutoff go, by batches; the others stay, as
// their count and checksum show; a dry run and a refused approval remove nothing.
func testRetention(t *testing.T, tg Target, kind string) {
	e := newEnv(t, tg)
	cutoff := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	colType := map[string]string{"postgres": "TIMESTAMP", "mysql": "DATETIME", "sqlite": "DATETIME"}[tg.Driver]
	if kind == "unix" {
		colType = "BIGINT"
	}
	e.exec("CREATE TABLE events (id BIGINT NOT NULL, user_id BIGINT, created_at " + colType + ", payload TEXT)")
	stamp := func(t time.Time) any {
		switch {
		case kind == "unix":
			return t.Unix()
		case tg.Driver == "sqlite":
			return t.UTC().Format("2006-01-02 15:04:05")
		}
		return t.UTC()
	}
	var rows [][]any
	var old int64
	for i := 0; i < 1000; i++ {
		at := cutoff.Add(time.Duration(i-600) * 17 * time.Hour) // 600 before the cutoff... minus those at it
		if at.Before(cutoff) {
			old++
		}
		var created any = stamp(at)
		if i%97 == 0 {
			created = nil // no time: kept
			if at.Before(cutoff) {
				old--
			}
		}
		rows = append(rows, []any{i, i % 50, created, "event " + strconv.Itoa(i)})
	}
	e.insert("events", []string{"id", "user_id", "created_at", "payload"}, rows)
	e.exec("CREATE TABLE events_keep (id BIGINT NOT NULL, payload TEXT)")
	if kind == "unix" {
		e.exec("INSERT INTO events_keep SELECT id, payload FROM events WHERE created_at IS NULL OR created_at >= ?", cutoff.Unix())
	} else {
		e.exec("INSERT INTO events_keep SELECT id, payload FROM events WHERE created_at IS NULL OR created_at >= ?", stamp(cutoff))
	}
	wantSum, wantN := e.tableChecksum("events_keep")
	if wantN != 1000-old {
		t.Fatalf("fixture: %d rows to keep, want %d", wantN, 1000-old)
	}
	cfg := e.load(`
  - name: events
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: events, key: { column: user_id, identifier: user_id }, batch: 64 }
    retention: { older_than: 400d, column: created_at }
`)
	d := cfg.Dataset("events")
	r, ok := d.Conn.(erasure.Retainer)
	if !ok {
		t.Fatal("the sql connector is not a Retainer")
	}
	res, err := r.Expire(e.ctx, cutoff, func(n int64) error { return erasure.ErrDryRun })
	if !errors.Is(err, erasure.ErrDryRun) || res.Expired != old || res.Removed != 0 {
		t.Fatalf("dry run %+v, %v; want %d expired", res, err, old)
	}
	if _, n := e.tableChecksum("events"); n != 1000 {
		t.Fatalf("dry run removed rows: %d left", n)
	}
	res, err = r.Expire(e.ctx, cutoff, func(n int64) error { return nil })
	if err != nil || res.Expired != old || res.Removed != old {
		t.Fatalf("Expire %+v, %v; want %d removed", res, err, old)
	}
	if sum, n := e.tableChecksum("events"); n != wantN || sum != wantSum {
		t.Fatalf("kept %d rows (%s), want %d (%s)", n, sum, wantN, wantSum)
	}
	res, err = r.Expire(e.ctx, cutoff, func(n int64) error { return nil })
	if err != nil || res.Expired != 0 || res.Removed != 0 {
		t.Fatalf("second run %+v, %v", res, err)
	}
}

// testReplay: a table restored from a copy taken before erasures gets exactly the erased
// subjects' rows removed again, and nothing else.
func testReplay(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	var rows [][]any
	for i := 1; i <= 600; i++ {
		for j := 0; j < 1+i%3; j++ {
			rows = append(rows, user(i, fmt.Sprintf("u%d-%d@example.com", i, j)))
		}
	}
	e.insert("users", userCols, rows)
	e.exec("CREATE TABLE users_backup AS SELECT * FROM users")
	cfg := e.load(`
  - name: app.users
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id }, batch: 50 }
`)
	d := cfg.Dataset("app.users")
	erased := map[string]bool{}
	for i := 7; len(erased) < 100; i += 5 {
		erased[strconv.Itoa(i)] = true
		e.erase(d, subject("user_id", strconv.Itoa(i)))
	}
	wantSum, wantN := e.countAndSum("users")
	// The restore: the table as the backup had it.
	e.exec("DELETE FROM users")
	e.exec("INSERT INTO users SELECT * FROM users_backup")
	rep, ok := d.Conn.(erasure.Replayer)
	if !ok {
		t.Fatal("the sql connector is not a Replayer")
	}
	var progress []erasure.ReplayProgress
	match := func(v string) bool { return erased[v] }
	dry, err := rep.Replay(e.ctx, match, true, func(p erasure.ReplayProgress) { progress = append(progress, p) })
	if err != nil || dry.Scanned != 600 || dry.Matched != 100 || dry.Removed != 0 {
		t.Fatalf("dry run %+v, %v", dry, err)
	}
	if len(progress) < 600/50 || progress[0].Total != 600 {
		t.Fatalf("%d progress reports (first %+v), want one per batch of 50 keys", len(progress), progress[0])
	}
	res, err := rep.Replay(e.ctx, match, false, nil)
	if err != nil || res.Matched != 100 {
		t.Fatalf("Replay %+v, %v", res, err)
	}
	if sum, n := e.countAndSum("users"); n != wantN || sum != wantSum || res.Removed != int64(len(rows))-wantN {
		t.Fatalf("after replay %d rows (%s), removed %d; want %d (%s)", n, sum, res.Removed, wantN, wantSum)
	}
	again, err := rep.Replay(context.Background(), match, false, nil)
	if err != nil || again.Matched != 0 || again.Removed != 0 {
		t.Fatalf("second replay %+v, %v", again, err)
	}
}

// countAndSum is a checksum of the users table's (id, email) rows, and their count.
func (e *env) countAndSum(table string) (string, int64) {
	e.t.Helper()
	rows, err := e.db.QueryContext(e.ctx, "SELECT id, email FROM "+table+" ORDER BY id, email")
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	h := sha256.New()
	var n int64
	for rows.Next() {
		var id int64
		var email string
		if err := rows.Scan(&id, &email); err != nil {
			e.t.Fatal(err)
		}
		fmt.Fprintf(h, "%d|%s\n", id, email)
		n++
	}
	return fmt.Sprintf("%x", h.Sum(nil)), n
}
