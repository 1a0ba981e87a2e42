// Package sqltest is the conformance suite of the sql connector: one set of cases run against
// every dialect (PostgreSQL, MySQL/MariaDB, SQLite) on a real server, each case in a fresh
// database or schema that is dropped afterwards.
//
// These are the cases only SQL has (redaction, composite keys, where restrictions, foreign
// keys, large sweeps...); the contract every connector keeps is connector/connectortest's,
// which the sql connector's tests run too.
//
// A dialect's test calls Run with a Target:
//
//	sqltest.Run(t, sqltest.Target{Driver: "sqlite", Text: "TEXT", Open: ...})
package sqltest

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"erasure"
	"erasure/registry"
)

// Target is one database to run the suite against.
type Target struct {
	// Driver is the registry's driver name: postgres, mysql or sqlite.
	Driver string
	// Text is the column type used for text columns (TEXT, VARCHAR(255)...).
	Text string
	// Open creates a fresh, empty database (or schema) for one test and returns the DSN the
	// connector and the test use to reach it. It drops it on t.Cleanup.
	Open func(t *testing.T) string
	// Schema, when set, is the name of the schema Open created, for the case that names the
	// schema explicitly in the block.
	Schema func(dsn string) string
	// Sweeps says whether the sweep cases run (they need a server: PostgreSQL, MariaDB).
	Sweeps bool
}

// env is one test's database.
type env struct {
	t   *testing.T
	tg  Target
	dsn string
	db  *sql.DB
	ctx context.Context
}

func newEnv(t *testing.T, tg Target) *env {
	t.Helper()
	dsn := tg.Open(t)
	drv := map[string]string{"postgres": "pgx", "mysql": "mysql", "sqlite": "sqlite"}[tg.Driver]
	db, err := sql.Open(drv, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", tg.Driver, err)
	}
	db.SetMaxOpenConns(2)
	t.Cleanup(func() { db.Close() })
	return &env{t: t, tg: tg, dsn: dsn, db: db, ctx: t.Context()}
}

// sub returns the env for subtest t, so that its helpers fail t rather than the parent.
func (e *env) sub(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// q rewrites ? placeholders to $n for PostgreSQL and TEXT to the target's text type.
func (e *env) q(query string) string {
	query = strings.ReplaceAll(query, "TEXT", e.tg.Text)
	if e.tg.Driver != "postgres" {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (e *env) exec(query string, args ...any) {
	e.t.Helper()
	if _, err := e.db.ExecContext(e.ctx, e.q(query), args...); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
}

func (e *env) count(table, where string, args ...any) int64 {
	e.t.Helper()
	query := "SELECT COUNT(*) FROM " + table
	if where != "" {
		query += " WHERE " + where
	}
	var n int64
	if err := e.db.QueryRowContext(e.ctx, e.q(query), args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// insert adds rows to table in multi-row statements.
func (e *env) insert(table string, cols []string, rows [][]any) {
	e.t.Helper()
	per := 500
	for len(rows) > 0 {
		n := min(per, len(rows))
		var b strings.Builder
		var args []any
		fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", table, strings.Join(cols, ", "))
		for i, r := range rows[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(" + strings.TrimSuffix(strings.Repeat("?, ", len(r)), ", ") + ")")
			args = append(args, r...)
		}
		e.exec(b.String(), args...)
		rows = rows[n:]
	}
}

// load parses a registry holding datasets (YAML list items), with DRIVER replaced by the
// target's driver and ${DSN} by the test's DSN, and closes its connectors after the test.
func (e *env) load(datasets string) *registry.Config {
	e.t.Helper()
	cfg, err := e.parse(datasets)
	if err != nil {
		e.t.Fatalf("registry: %v", err)
	}
	e.t.Cleanup(func() {
		for _, d := range cfg.Datasets {
			d.Conn.Close()
		}
	})
	return cfg
}

func (e *env) parse(datasets string) (*registry.Config, error) {
	src := "version: 1\nidentifiers: [user_id, email, account_id, tenant_id]\ndatasets:\n" +
		strings.ReplaceAll(datasets, "DRIVER", e.tg.Driver)
	return registry.Parse("test.yaml", []byte(src), func(k string) (string, bool) {
		if k == "DSN" {
			return e.dsn, true
		}
		return "", false
	})
}

func subject(ids ...string) erasure.Subject {
	var out []erasure.Identifier
	for i := 0; i+1 < len(ids); i += 2 {
		out = append(out, erasure.Identifier{Type: ids[i], Value: ids[i+1]})
	}
	return erasure.NewSubject(out...)
}

func eraser(t *testing.T, d *erasure.Dataset) interface {
	erasure.Eraser
	erasure.Verifier
} {
	t.Helper()
	c, ok := d.Conn.(interface {
		erasure.Eraser
		erasure.Verifier
	})
	if !ok {
		t.Fatalf("dataset %s: connector %T is not an Eraser and a Verifier", d.Name, d.Conn)
	}
	return c
}

// erase erases s from d and checks that it succeeded and that d no longer holds s.
func (e *env) erase(d *erasure.Dataset, s erasure.Subject) int64 {
	e.t.Helper()
	c := eraser(e.t, d)
	out, err := c.Erase(e.ctx, s)
	if err != nil {
		e.t.Fatalf("Erase %s: %v", d.Name, err)
	}
	if holds, err := c.Holds(e.ctx, s); err != nil || holds {
		e.t.Fatalf("Holds %s after Erase = %v, %v; want false, nil", d.Name, holds, err)
	}
	return out.Removed
}

func (e *env) holds(d *erasure.Dataset, s erasure.Subject) bool {
	e.t.Helper()
	h, err := eraser(e.t, d).Holds(e.ctx, s)
	if err != nil {
		e.t.Fatalf("Holds %s: %v", d.Name, err)
	}
	return h
}

func wantRemoved(t *testing.T, what string, got, want int64) {
	t.Helper()
	if got != want {
		t.Errorf("%s: removed %d rows, want %d", what, got, want)
	}
}

func wantCount(t *testing.T, what string, got, want int64) {
	t.Helper()
	if got != want {
		t.Errorf("%s: %d rows, want %d", what, got, want)
	}
}

// Run runs every case against tg.
func Run(t *testing.T, tg Target) {
	t.Run("Delete", func(t *testing.T) { testDelete(t, tg) })
	t.Run("RedactToNull", func(t *testing.T) { testRedactNull(t, tg) })
	t.Run("RedactToReplacement", func(t *testing.T) { testRedactReplacement(t, tg) })
	t.Run("CompositeKey", func(t *testing.T) { testComposite(t, tg) })
	t.Run("WhereRestriction", func(t *testing.T) { testWhere(t, tg) })
	t.Run("WhereAndSetOnNumbers", func(t *testing.T) { testWhereOnNumbers(t, tg) })
	t.Run("ZeroRowsIsSuccess", func(t *testing.T) { testZeroRows(t, tg) })
	t.Run("LargeErasureInBatches", func(t *testing.T) { testLarge(t, tg) })
	t.Run("ManyKeyValues", func(t *testing.T) { testManyValues(t, tg) })
	t.Run("ExplicitSchema", func(t *testing.T) { testSchema(t, tg) })
	t.Run("LookupChain", func(t *testing.T) { testLookupChain(t, tg) })
	t.Run("HostileValues", func(t *testing.T) { testHostile(t, tg) })
	t.Run("ExactMatchWhateverTheCollation", func(t *testing.T) { testExactMatch(t, tg) })
	t.Run("ForeignKeyIsPermanent", func(t *testing.T) { testForeignKey(t, tg) })
	t.Run("Check", func(t *testing.T) { testCheck(t, tg) })
	t.Run("SchemaErrorsArePermanent", func(t *testing.T) { testSchemaErrors(t, tg) })
	t.Run("ConcurrentErase", func(t *testing.T) { testConcurrent(t, tg) })
	t.Run("SharedPool", func(t *testing.T) { testSharedPool(t, tg) })
	t.Run("GuardStopsAnEraseBeforeItCommits", func(t *testing.T) { testGuardErase(t, tg) })
	if tg.Sweeps {
		t.Run("Sweep", func(t *testing.T) { testSweep(t, tg) })
		t.Run("SweepIsAtomic", func(t *testing.T) { testSweepAtomic(t, tg) })
		t.Run("GuardStopsASweepBeforeItCommits", func(t *testing.T) { testGuardSweep(t, tg) })
		t.Run("SweepMatchesExactly", func(t *testing.T) { testSweepExact(t, tg) })
	}
}
