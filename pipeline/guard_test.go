package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"erasure"
	sqlconn "erasure/connector/sql"
)

// The blast-radius guard end to end: a subject matching more than the dataset's max_removed
// fails its task, which removes nothing; the operator's forced retry (the store keeps the
// override) lets it through.

// wantTripped fails t unless the request failed with its task of dataset stopped at the guard.
func wantTripped(t *testing.T, r *erasure.Request, dataset, count string) {
	t.Helper()
	if r.Status != erasure.RequestFailed {
		t.Fatalf("request %s is %s, want failed", r.ID, r.Status)
	}
	for _, tk := range r.Tasks {
		if tk.Dataset != dataset {
			continue
		}
		if tk.State != erasure.TaskFailed || tk.Guard != erasure.GuardTripped || !strings.Contains(tk.LastError, count) || !strings.Contains(tk.LastError, "max_removed 10") {
			t.Fatalf("task %+v: want failed at its guard, its error naming %s and the limit", tk, count)
		}
		return
	}
	t.Fatalf("request %s has no task of %s", r.ID, dataset)
}

func TestGuard_SQL(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(*testing.T) warehouse
	}{{"PostgreSQL", postgresWarehouse}, {"MariaDB", mysqlWarehouse}} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.open(t)
			ctx := context.Background()
			if _, err := w.db.ExecContext(ctx, `CREATE TABLE orders (user_id BIGINT NOT NULL, item VARCHAR(32) NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			var rows []string
			for i := 0; i < 30; i++ {
				rows = append(rows, fmt.Sprintf("(7, 'item %d')", i))
			}
			rows = append(rows, "(8, 'a')", "(8, 'b')", "(9, 'c')")
			if _, err := w.db.ExecContext(ctx, `INSERT INTO orders (user_id, item) VALUES `+strings.Join(rows, ", ")); err != nil {
				t.Fatal(err)
			}
			count := func(where string) int {
				var n int
				if err := w.db.QueryRowContext(ctx, `SELECT count(*) FROM orders WHERE `+where).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			d := &erasure.Dataset{Name: "shop.orders", Owner: "shop", Connector: "sql", Method: erasure.MethodRealtime, Keys: []string{"user_id"},
				Policy: erasure.Policy{Deadline: 720 * time.Hour, MaxAttempts: 3, Backoff: erasure.Backoff{Initial: time.Second, Max: time.Minute}, Timeout: 5 * time.Second,
					Guard: erasure.Guard{MaxRemoved: 10}}}
			c, err := sqlconn.New(d, sqlconn.Config{Driver: w.driver, DSN: w.dsn, Table: "orders", Key: &sqlconn.Key{Column: "user_id", Identifier: "user_id"}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			d.Conn = c
			t.Cleanup(func() { c.Close() })
			h := newHarness(t, nil, d)

			wide := h.submit(t, "user_id", "7")
			for h.step(t) > 0 {
			}
			wantTripped(t, h.get(t, wide.ID), "shop.orders", "30 rows")
			if n := count("user_id = 7"); n != 30 {
				t.Fatalf("%d rows of user 7 after the refused erase, want 30", n)
			}
			if n := count("1 = 1"); n != 33 {
				t.Fatalf("%d rows after the refused erase, want 33", n)
			}

			t.Run("PlainRetryStopsAgain", func(t *testing.T) {
				if _, err := h.svc.Retry(ctx, wide.ID, "operator", erasure.RetryOptions{}); err != nil {
					t.Fatal(err)
				}
				for h.step(t) > 0 {
				}
				wantTripped(t, h.get(t, wide.ID), "shop.orders", "30 rows")
				if n := count("user_id = 7"); n != 30 {
					t.Fatalf("%d rows of user 7", n)
				}
			})
			t.Run("ForcedRetryGoesThrough", func(t *testing.T) {
				if _, err := h.svc.Retry(ctx, wide.ID, "operator", erasure.RetryOptions{OverrideGuard: true}); err != nil {
					t.Fatal(err)
				}
				for h.step(t) > 0 {
				}
				r := h.get(t, wide.ID)
				if r.Status != erasure.RequestCompleted || r.Tasks[0].Removed != 30 || r.Tasks[0].Guard != erasure.GuardOverridden {
					t.Fatalf("after the forced retry: %s %+v", r.Status, r.Tasks[0])
				}
				if n := count("user_id = 7"); n != 0 {
					t.Fatalf("%d rows of user 7 after the forced erase", n)
				}
				if n := count("1 = 1"); n != 3 {
					t.Fatalf("%d rows left, want the other users' 3", n)
				}
			})
			t.Run("UnderTheLimitNeedsNoOperator", func(t *testing.T) {
				r := h.submit(t, "user_id", "8")
				for h.step(t) > 0 {
				}
				if got := h.get(t, r.ID); got.Status != erasure.RequestCompleted || got.Tasks[0].Removed != 2 {
					t.Fatalf("request of user 8: %s %+v", got.Status, got.Tasks[0])
				}
			})
		})
	}
}

// TestGuard_FilesSweep: in a sweep, the subject over the limit fails alone; the others are swept
// at once; the forced subject goes through at the next sweep.
func TestGuard_FilesSweep(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&b, "{\"user\":{\"id\":7},\"n\":%d}\n", i)
	}
	for _, u := range []int{1, 2, 3} {
		fmt.Fprintf(&b, "{\"user\":{\"id\":%d},\"n\":0}\n", u)
	}
	if err := os.WriteFile(filepath.Join(dir, "part-000.jsonl"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	d := filesDataset(t, "warehouse.events", dir)
	d.Policy.Guard = erasure.Guard{MaxRemoved: 10, MaxRemovedShare: 0.5, ShareMinRows: 100}
	h := newHarness(t, nil, d)
	sw := h.sweeper(d)
	ctx := context.Background()
	reqs := h.queue(t, 7, 1)
	got, err := sw.SweepNow(ctx, d.Name, "op")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != erasure.SweepCommitted || got.Tasks != 1 || got.Removed != 1 {
		t.Fatalf("the sweep after the guard trip: %+v; want user 1's row swept at once", got)
	}
	wantTripped(t, h.get(t, reqs[0].ID), d.Name, "30 rows")
	if r := h.get(t, reqs[1].ID); r.Status != erasure.RequestCompleted {
		t.Fatalf("request of user 1 is %s", r.Status)
	}
	if u := usersIn(t, dir); u["7"] != 30 || u["1"] != 0 || u["2"] != 1 {
		t.Fatalf("rows by user after the first sweeps: %v", u)
	}
	sweeps, _ := h.store.Sweeps(ctx, d.Name, 10)
	if len(sweeps) != 2 || sweeps[1].State != erasure.SweepFailed || !strings.Contains(sweeps[1].Error, "max_removed 10") {
		t.Fatalf("sweeps %+v: want the refused one, then the committed one", sweeps)
	}

	if _, err := h.svc.Retry(ctx, reqs[0].ID, "operator", erasure.RetryOptions{OverrideGuard: true}); err != nil {
		t.Fatal(err)
	}
	for h.step(t) > 0 {
	}
	if got, err = sw.SweepNow(ctx, d.Name, "op"); err != nil || got.State != erasure.SweepCommitted || got.Removed != 30 {
		t.Fatalf("forced sweep: %+v, %v", got, err)
	}
	if r := h.get(t, reqs[0].ID); r.Status != erasure.RequestCompleted {
		t.Fatalf("forced request is %s", r.Status)
	}
	if u := usersIn(t, dir); u["7"] != 0 || u["2"] != 1 || u["3"] != 1 {
		t.Fatalf("rows by user after the forced sweep: %v", u)
	}
}
