package sqlconn_test

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"erasure"
	sqlconn "erasure/connector/sql"
	"erasure/connector/sql/sqltest"
	"erasure/internal/testenv"
	"erasure/registry"
)

func TestConformance_PostgreSQL(t *testing.T) {
	testenv.Address(t, "ERASURE_TEST_POSTGRES") // skip early without the service
	run(t, sqltest.Target{
		Driver: "postgres",
		Text:   "TEXT",
		Sweeps: true,
		Open: func(t *testing.T) string {
			return testenv.PostgresSchema(t, "sqlconn")
		},
		Schema: func(dsn string) string {
			u, _ := url.Parse(dsn)
			return u.Query().Get("search_path")
		},
	})
}

func TestConformance_MySQL(t *testing.T) {
	testenv.Address(t, "ERASURE_TEST_MYSQL") // skip early without the service
	run(t, sqltest.Target{
		Driver: "mysql",
		Text:   "VARCHAR(255)",
		Sweeps: true,
		Open: func(t *testing.T) string {
			return testenv.MySQLDatabase(t, "sqlconn")
		},
		Schema: func(dsn string) string {
			cfg, _ := mysql.ParseDSN(dsn)
			return cfg.DBName
		},
	})
}

// run runs the suite and its policy cases against tg.
func run(t *testing.T, tg sqltest.Target) {
	sqltest.Run(t, tg)
	t.Run("Policies", func(t *testing.T) { sqltest.RunPolicies(t, tg) })
}

func TestConformance_SQLite(t *testing.T) {
	run(t, sqltest.Target{
		Driver: "sqlite",
		Text:   "TEXT",
		Sweeps: true,
		Open: func(t *testing.T) string {
			return "file:" + filepath.Join(t.TempDir(), "test.db") + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)"
		},
	})
}

func TestBuild_Errors(t *testing.T) {
	cases := []struct {
		name  string
		block string // the sql block, from line 8 of the file
		want  []string
	}{
		{"InjectionInTableName", `
      driver: postgres
      dsn: postgres://x
      table: "users; DROP"
      key: { column: id, identifier: user_id }`,
			[]string{`test.yaml:10: dataset app.users: sql: table "users; DROP" is not a valid name`}},
		{"InjectionInColumnName", `
      driver: postgres
      dsn: postgres://x
      table: users
      key: { column: "id\" OR 1=1 --", identifier: user_id }`,
			[]string{`test.yaml:11: dataset app.users: sql: key column "id\" OR 1=1 --" is not a valid name`}},
		{"UnknownKey", `
      driver: sqlite
      dsn: x.db
      table: users
      primary: id
      key: { column: id, identifier: user_id }`,
			[]string{`test.yaml:11: dataset app.users: sql: unknown key "primary"`}},
		{"BadAction", `
      driver: mysql
      dsn: root@tcp(127.0.0.1:3306)/test
      table: users
      key: { column: id, identifier: user_id }
      action: truncate`,
			[]string{`test.yaml:12: dataset app.users: sql: action "truncate" is not known (delete or redact)`}},
		{"UndeclaredIdentifier", `
      driver: sqlite
      dsn: x.db
      table: users
      key: { column: id, identifier: phone }`,
			[]string{`test.yaml:11: dataset app.users: sql: key identifier "phone" is not declared`}},
		{"RedactWithoutColumns", `
      driver: sqlite
      dsn: x.db
      table: users
      key: { column: id, identifier: user_id }
      action: redact`,
			[]string{`test.yaml:12: dataset app.users: sql: action redact needs columns`}},
		{"WhereWithTwoOperators", `
      driver: sqlite
      dsn: x.db
      table: users
      key: { column: id, identifier: user_id }
      where:
        - { column: status, equals: a, is_null: true }`,
			[]string{`test.yaml:13: dataset app.users: sql: where: set exactly one of equals, in, is_null`}},
		{"KeyAndKeys", `
      driver: sqlite
      dsn: x.db
      table: users
      key: { column: id, identifier: user_id }
      keys: [ { column: id, identifier: user_id } ]`,
			[]string{`test.yaml:12: dataset app.users: sql: set key or keys, not both`}},
		{"NoKey", `
      driver: sqlite
      dsn: x.db
      table: users`,
			[]string{`test.yaml:8: dataset app.users: sql: key is required`}},
		{"UnknownDriverAndBadBatch", `
      driver: oracle
      dsn: x
      table: users
      key: { column: id, identifier: user_id }
      batch: -1`,
			[]string{`test.yaml:8: dataset app.users: sql: driver "oracle" is not known`, `test.yaml:12: dataset app.users: sql: batch must be between 1 and`}},
		{"BadMySQLDSNIsNotEchoed", `
      driver: mysql
      dsn: "secret-password@nowhere"
      table: users
      key: { column: id, identifier: user_id }`,
			[]string{`test.yaml:9: dataset app.users: sql: dsn is not a valid MySQL DSN`}},
		{"ColumnsWithDelete", `
      driver: sqlite
      dsn: x.db
      table: users
      key: { column: id, identifier: user_id }
      columns: [email]`,
			[]string{`test.yaml:12: dataset app.users: sql: columns and set apply to action redact only`}},
		{"ColumnInColumnsAndSet", `
      driver: sqlite
      dsn: x.db
      table: users
      key: { column: id, identifier: user_id }
      action: redact
      columns: [email]
      set: { email: x }`,
			[]string{`test.yaml:14: dataset app.users: sql: column email is both in columns (NULL) and set`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := "version: 1\nidentifiers: [user_id, email]\ndatasets:\n  - name: app.users\n    owner: app\n    connector: sql\n    sql:" + c.block + "\n"
			_, err := registry.Parse("test.yaml", []byte(src), func(string) (string, bool) { return "", false })
			if err == nil {
				t.Fatal("Parse succeeded, want errors")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("errors:\n%v\ndo not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret-password") {
				t.Errorf("errors echo the DSN: %v", err)
			}
		})
	}
}

func TestBuild_ProvidesColumnMustBeAName(t *testing.T) {
	src := `version: 1
identifiers: [user_id, email]
datasets:
  - name: app.users
    owner: app
    connector: sql
    sql: { driver: sqlite, dsn: x.db, table: users, key: { column: id, identifier: user_id } }
    provides: [ { identifier: email, column: "email FROM users; --" } ]
`
	_, err := registry.Parse("test.yaml", []byte(src), nil)
	if err == nil || !strings.Contains(err.Error(), `column "email FROM users; --" is not a valid name`) {
		t.Errorf("Parse = %v, want an error about the provides column", err)
	}
}

func TestNew_Validates(t *testing.T) {
	ds := &erasure.Dataset{Name: "app.users"}
	_, err := sqlconn.New(ds, sqlconn.Config{Driver: "sqlite", DSN: "x.db", Table: "users; DROP TABLE x", Key: &sqlconn.Key{Column: "id", Identifier: "user_id"}}, nil)
	if erasure.ErrorCode(err) != erasure.EINVALID {
		t.Errorf("New with an injected table name = %v, want EINVALID", err)
	}
}
