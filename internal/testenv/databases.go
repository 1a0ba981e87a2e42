package testenv

import (
	"context"
	"database/sql"
	"net/url"
	"testing"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
)

// PostgresSchema creates a schema with a random name (prefix_…) on the PostgreSQL server at
// ERASURE_TEST_POSTGRES, drops it with everything in it when the test ends, and returns a DSN
// whose search_path is that schema.
func PostgresSchema(t testing.TB, prefix string) string {
	t.Helper()
	base := Address(t, "ERASURE_TEST_POSTGRES")
	schema := Name(prefix)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("ERASURE_TEST_POSTGRES: %v", err)
	}
	admin(t, "pgx", base, "ERASURE_TEST_POSTGRES", `CREATE SCHEMA `+schema, `DROP SCHEMA `+schema+` CASCADE`)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// MySQLDatabase creates a database with a random name (prefix_…) on the MariaDB/MySQL server at
// ERASURE_TEST_MYSQL, drops it when the test ends, and returns its DSN.
func MySQLDatabase(t testing.TB, prefix string) string {
	t.Helper()
	base := Address(t, "ERASURE_TEST_MYSQL")
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("ERASURE_TEST_MYSQL: %v", err)
	}
	cfg.DBName = Name(prefix)
	admin(t, "mysql", base, "ERASURE_TEST_MYSQL", "CREATE DATABASE "+cfg.DBName+" CHARACTER SET utf8mb4", "DROP DATABASE "+cfg.DBName)
	return cfg.FormatDSN()
}

// admin runs create now and drop when the test ends, on its own connection.
func admin(t testing.TB, driver, dsn, env, create, drop string) {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	if _, err := db.ExecContext(context.Background(), create); err != nil {
		db.Close()
		Unavailable(t, env, err)
	}
	t.Cleanup(func() {
		defer db.Close()
		if _, err := db.ExecContext(context.Background(), drop); err != nil {
			t.Errorf("%s: %v", drop, err)
		}
	})
}
