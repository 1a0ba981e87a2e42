package sqlconn_test

import (
	"database/sql"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"erasure"
	"erasure/connector/connectortest"
	"erasure/internal/testenv"
)

// The connectors' common contract, on each database. sqltest holds the cases only SQL has
// (redaction, composite keys, where, foreign keys, large sweeps...).

func TestConnectorContract_PostgreSQL(t *testing.T) {
	testenv.Address(t, "ERASURE_TEST_POSTGRES")
	connectortest.Run(t, usersTarget("postgres", "TEXT", func(t *testing.T) string {
		return testenv.PostgresSchema(t, "sqlcontract")
	}, func(at connectortest.Nowhere) string {
		return "postgres://postgres@" + at.Addr + "/test?sslmode=disable&connect_timeout=2"
	}))
}

func TestConnectorContract_MySQL(t *testing.T) {
	testenv.Address(t, "ERASURE_TEST_MYSQL")
	connectortest.Run(t, usersTarget("mysql", "VARCHAR(255)", func(t *testing.T) string {
		return testenv.MySQLDatabase(t, "sqlcontract")
	}, func(at connectortest.Nowhere) string {
		return "root@tcp(" + at.Addr + ")/test?timeout=2s"
	}))
}

func TestConnectorContract_SQLite(t *testing.T) {
	tg := usersTarget("sqlite", "TEXT", func(t *testing.T) string {
		return "file:" + filepath.Join(t.TempDir(), "test.db") + "?_pragma=busy_timeout(5000)"
	}, func(at connectortest.Nowhere) string {
		return "file:" + at.Path + "?_pragma=busy_timeout(5000)"
	})
	tg.Local = true
	connectortest.Run(t, tg)
}

// usersTarget is a users table (id, email) keyed by user_id and providing email. open returns
// the DSN of a fresh database; unreachable the DSN of one that is not there.
func usersTarget(driver, text string, open func(*testing.T) string, unreachable func(connectortest.Nowhere) string) connectortest.Target {
	const registryYAML = `version: 1
identifiers: [user_id, email]
datasets:
  - name: app.users
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id } }
    provides: [ { identifier: email, column: email } ]
`
	reg := strings.ReplaceAll(registryYAML, "DRIVER", driver)
	return connectortest.Target{
		Open: func(t *testing.T) *connectortest.Service {
			dsn := open(t)
			db := openDB(t, driver, dsn)
			exec(t, db, driver, "CREATE TABLE users (id BIGINT NOT NULL, email "+text+")")
			return &connectortest.Service{
				Registry: reg,
				Env:      map[string]string{"DSN": dsn},
				Key:      "user_id",
				// Two rows per subject, each with its own e-mail address.
				Plant: func(t *testing.T, s erasure.Subject) []erasure.Identifier {
					var out []erasure.Identifier
					for _, v := range s.Values("user_id") {
						for _, email := range []string{"u" + v + "@example.com", "u" + v + ".alt@example.com"} {
							exec(t, db, driver, "INSERT INTO users (id, email) VALUES (?, ?)", v, email)
							out = append(out, erasure.Identifier{Type: "email", Value: email})
						}
					}
					return out
				},
				Remaining: func(t *testing.T, s erasure.Subject) int64 {
					var total int64
					for _, v := range s.Values("user_id") {
						id, err := strconv.ParseInt(v, 10, 64)
						if err != nil {
							t.Fatal(err)
						}
						var n int64
						if err := db.QueryRowContext(t.Context(), placeholders(driver, "SELECT COUNT(*) FROM users WHERE id = ?"), id).Scan(&n); err != nil {
							t.Fatal(err)
						}
						total += n
					}
					return total
				},
			}
		},
		Unreachable: func(t *testing.T, at connectortest.Nowhere) *connectortest.Service {
			return &connectortest.Service{Registry: reg, Env: map[string]string{"DSN": unreachable(at)}, Key: "user_id"}
		},
	}
}

func openDB(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(map[string]string{"postgres": "pgx", "mysql": "mysql", "sqlite": "sqlite"}[driver], dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, driver, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), placeholders(driver, query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// placeholders rewrites ? to $n for PostgreSQL.
func placeholders(driver, query string) string {
	if driver != "postgres" {
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
