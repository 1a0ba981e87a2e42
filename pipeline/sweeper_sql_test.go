package pipeline_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"

	"erasure"
	sqlconn "erasure/connector/sql"
	"erasure/internal/testenv"
)

// warehouse is a database of its own on a real server, dropped after the test.
type warehouse struct {
	driver string // the sql connector's driver name
	db     *sql.DB
	dsn    string // for the connector
}

func postgresWarehouse(t *testing.T) warehouse {
	t.Helper()
	dsn := testenv.PostgresSchema(t, "sweeper")
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return warehouse{"postgres", db, dsn}
}

func mysqlWarehouse(t *testing.T) warehouse {
	t.Helper()
	dsn := testenv.MySQLDatabase(t, "sweeper")
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return warehouse{"mysql", db, dsn}
}

// TestSweeper_Warehouse sweeps a warehouse table through the sql connector (method offline):
// the queued users' rows are erased by the database's engine in one transaction and the tasks
// complete with the sweep.
func TestSweeper_Warehouse(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(*testing.T) warehouse
	}{{"PostgreSQL", postgresWarehouse}, {"MariaDB", mysqlWarehouse}} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.open(t)
			ctx := context.Background()
			if _, err := w.db.ExecContext(ctx, `CREATE TABLE events (user_id BIGINT NOT NULL, payload VARCHAR(64) NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			var rows []string
			for u := 1; u <= 40; u++ {
				for r := 0; r < 5; r++ {
					rows = append(rows, fmt.Sprintf("(%d, 'event %d')", u, r))
				}
			}
			if _, err := w.db.ExecContext(ctx, `INSERT INTO events (user_id, payload) VALUES `+strings.Join(rows, ", ")); err != nil {
				t.Fatal(err)
			}
			d := &erasure.Dataset{Name: "warehouse.events", Owner: "data-team", Connector: "sql", Method: erasure.MethodOffline,
				Policy: erasure.Policy{MaxAttempts: 3, Timeout: 5 * time.Second, SweepEvery: 24 * time.Hour, SweepMode: "internal"}}
			c, err := sqlconn.New(d, sqlconn.Config{Driver: w.driver, DSN: w.dsn, Table: "events", Key: &sqlconn.Key{Column: "user_id", Identifier: "user_id"}, Action: "delete"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			d.Conn = c
			t.Cleanup(func() { c.Close() })
			h := newHarness(t, nil, d)
			sw := h.sweeper(d)
			reqs := h.queue(t, 4, 19, 33)
			count := func(where string) int {
				var n int
				if err := w.db.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE `+where).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			if n := count("user_id IN (4, 19, 33)"); n != 15 {
				t.Fatalf("%d rows before the sweep", n)
			}
			got, err := sw.SweepNow(ctx, d.Name, "op")
			if err != nil {
				t.Fatal(err)
			}
			if got.State != erasure.SweepCommitted || got.Removed != 15 || got.Tasks != 3 {
				t.Fatalf("sweep %+v", got)
			}
			if n := count("user_id IN (4, 19, 33)"); n != 0 {
				t.Fatalf("%d rows of erased users left", n)
			}
			if n := count("1 = 1"); n != 185 {
				t.Fatalf("%d rows left, want 185", n)
			}
			for _, r := range reqs {
				if g := h.get(t, r.ID); g.Status != erasure.RequestCompleted {
					t.Fatalf("request %s is %s", r.ID, g.Status)
				}
			}
		})
	}
}
