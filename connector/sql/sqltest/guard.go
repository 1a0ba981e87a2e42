package sqltest

import (
	"strconv"
	"strings"
	"testing"

	"erasure"
)

// wantGuard fails t unless err is a permanent *erasure.GuardError whose message names count
// and limit.
func wantGuard(t *testing.T, what string, err error, count, limit int64) *erasure.GuardError {
	t.Helper()
	g, ok := erasure.AsGuardError(err)
	if !ok || !erasure.IsPermanent(err) {
		t.Fatalf("%s: err %v (%T), want a permanent guard error", what, err, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, strconv.FormatInt(count, 10)+" rows") || !strings.Contains(msg, "max_removed "+strconv.FormatInt(limit, 10)) {
		t.Fatalf("%s: message %q must name the count %d and the limit %d", what, msg, count, limit)
	}
	return g
}

// testGuardErase: a subject matching more rows than max_removed is refused inside the
// transaction, nothing erased; under the limit it is erased; without a guard in the context
// (an operator's forced retry) it goes through.
func testGuardErase(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	var rows [][]any
	for i := 0; i < 30; i++ {
		rows = append(rows, user(7, "seven"+strconv.Itoa(i)+"@example.com"))
	}
	for i := 0; i < 3; i++ {
		rows = append(rows, user(8, "eight"+strconv.Itoa(i)+"@example.com"))
	}
	for i := 0; i < 2; i++ {
		rows = append(rows, user(9, "nine"+strconv.Itoa(i)+"@example.com"))
	}
	e.insert("users", userCols, rows)
	cfg := e.load(`
  - name: app.users
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id }, batch: 7 }
  - name: app.users.redacted
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id }, action: redact, columns: [email] }
`)
	guarded := erasure.ContextWithGuard(e.ctx, erasure.Guard{MaxRemoved: 10})
	c := eraser(t, cfg.Dataset("app.users"))

	t.Run("OverTheLimitRemovesNothing", func(t *testing.T) {
		out, err := c.Erase(guarded, subject("user_id", "7"))
		wantGuard(t, "erase of 30 rows", err, 30, 10)
		if out.Removed != 0 {
			t.Fatalf("outcome reports %d removed", out.Removed)
		}
		wantCount(t, "rows of user 7 after the refused erase", e.count("users", "id = ?", 7), 30)
		wantCount(t, "all rows", e.count("users", ""), 35)
	})
	t.Run("RedactionOverTheLimitChangesNothing", func(t *testing.T) {
		_, err := eraser(t, cfg.Dataset("app.users.redacted")).Erase(guarded, subject("user_id", "7"))
		wantGuard(t, "redaction of 30 rows", err, 30, 10)
		wantCount(t, "rows of user 7 still holding an e-mail", e.count("users", "id = ? AND email IS NOT NULL", 7), 30)
	})
	t.Run("UnderTheLimitIsErasedInOneTransaction", func(t *testing.T) {
		out, err := c.Erase(guarded, subject("user_id", "8"))
		if err != nil {
			t.Fatal(err)
		}
		wantRemoved(t, "guarded erase of 3 rows", out.Removed, 3)
		wantCount(t, "rows of user 8", e.count("users", "id = ?", 8), 0)
	})
	t.Run("RedactionUnderTheLimitIsDoneOnce", func(t *testing.T) {
		r := eraser(t, cfg.Dataset("app.users.redacted"))
		out, err := r.Erase(guarded, subject("user_id", "9"))
		if err != nil {
			t.Fatal(err)
		}
		wantRemoved(t, "guarded redaction of 2 rows", out.Removed, 2)
		wantCount(t, "rows of user 9 still holding an e-mail", e.count("users", "id = ? AND email IS NOT NULL", 9), 0)
		if out, err = r.Erase(guarded, subject("user_id", "9")); err != nil {
			t.Fatal(err)
		}
		wantRemoved(t, "the same redaction again", out.Removed, 0)
		wantCount(t, "rows of user 9", e.count("users", "id = ?", 9), 2)
	})
	t.Run("ForcedGoesThrough", func(t *testing.T) {
		// The executor puts no guard in the context of a task an operator forced.
		wantRemoved(t, "forced erase", e.erase(cfg.Dataset("app.users"), subject("user_id", "7")), 30)
		wantCount(t, "all rows but user 9's redacted ones", e.count("users", ""), 2)
	})
}

// testGuardSweep: in a sweep, the subjects over max_removed are named and nothing is erased;
// a subject forced past the guard is not held to it; a sweep removing more than
// max_removed_share of the table is refused, naming the table.
func testGuardSweep(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(`CREATE TABLE events (user_id BIGINT NOT NULL, payload TEXT)`)
	var rows [][]any
	add := func(user, n int) {
		for i := 0; i < n; i++ {
			rows = append(rows, []any{user, "p" + strconv.Itoa(i)})
		}
	}
	add(1, 4)   // small
	add(2, 30)  // over the limit
	add(3, 25)  // over the limit, forced
	add(99, 60) // never queued
	e.insert("events", []string{"user_id", "payload"}, rows)
	cfg := e.load(`
  - name: warehouse.events
    owner: data
    connector: sql
    method: offline
    sql: { driver: DRIVER, dsn: "${DSN}", table: events, key: { column: user_id, identifier: user_id } }
`)
	sw := cfg.Dataset("warehouse.events").Conn.(erasure.Sweeper)
	small := erasure.SweepSubject{TaskID: 11, Subject: subject("user_id", "1")}
	big := erasure.SweepSubject{TaskID: 12, Subject: subject("user_id", "2")}
	forced := erasure.SweepSubject{TaskID: 13, Subject: subject("user_id", "3"), OverrideGuard: true}
	guard := erasure.Guard{MaxRemoved: 10}

	t.Run("SubjectOverTheLimitStopsTheSweep", func(t *testing.T) {
		_, err := sw.Sweep(erasure.ContextWithGuard(e.ctx, guard), []erasure.SweepSubject{small, big, forced})
		g := wantGuard(t, "sweep", err, 30, 10)
		if len(g.Tasks) != 1 || g.Tasks[0] != big.TaskID {
			t.Fatalf("guard names tasks %v, want only %d (the forced task is not held to the limit)", g.Tasks, big.TaskID)
		}
		wantCount(t, "rows after the refused sweep", e.count("events", ""), 119)
	})
	t.Run("OthersAndTheForcedOneAreSwept", func(t *testing.T) {
		res, err := sw.Sweep(erasure.ContextWithGuard(e.ctx, guard), []erasure.SweepSubject{small, forced})
		if err != nil {
			t.Fatal(err)
		}
		wantRemoved(t, "sweep", res.Removed, 29)
		wantCount(t, "rows left", e.count("events", ""), 90)
	})
	t.Run("ShareOfTheTableStopsTheSweep", func(t *testing.T) {
		// 90 rows left: user 2's 30 and user 99's 60. Erasing user 99 would drop two thirds.
		share := erasure.Guard{MaxRemovedShare: 0.5, ShareMinRows: 10}
		_, err := sw.Sweep(erasure.ContextWithGuard(e.ctx, share), []erasure.SweepSubject{{TaskID: 14, Subject: subject("user_id", "99")}})
		g, ok := erasure.AsGuardError(err)
		if !ok || !strings.Contains(err.Error(), "table events") || !strings.Contains(err.Error(), "60 of the 90 rows") || g.MaxShare != 0.5 {
			t.Fatalf("err %v: want a guard error naming the table and the share", err)
		}
		wantCount(t, "rows after the refused sweep", e.count("events", ""), 90)
		res, err := sw.Sweep(erasure.ContextWithGuard(e.ctx, share), []erasure.SweepSubject{big})
		if err != nil || res.Removed != 30 {
			t.Fatalf("a third of the table: %+v, %v", res, err)
		}
	})
}
