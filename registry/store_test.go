package registry_test

import (
	"strings"
	"testing"

	"erasure/registry"
)

func TestParse_Store(t *testing.T) {
	for _, tc := range []struct {
		name, store string
		driver      string // the driver chosen; "" when the file is refused
		err         string
	}{
		{"NoStoreIsSQLite", ``, "sqlite", ""},
		{"PostgresURLSelectsPostgres", `store: { dsn: "postgres://erasure:${INTAKE_TOKEN}@db/erasure" }`, "postgres", ""},
		{"PostgresDSNFromTheEnvironment", `store: { dsn: "${ERASURE_POSTGRES_DSN}" }`, "postgres", ""},
		{"APasswordInTheFileIsRefused", `store: { dsn: "postgres://erasure:secret@db/erasure" }`, "", "the URL holds a password written in the file"},
		{"PostgresqlSchemeToo", `store: { dsn: "postgresql://db/erasure" }`, "postgres", ""},
		{"DriverAndKeywordDSN", `store: { driver: postgres, dsn: "host=db dbname=erasure" }`, "postgres", ""},
		{"KeywordDSNNeedsTheDriver", `store: { dsn: "host=db password=secret" }`, "", `store.dsn: its scheme "" names no store`},
		{"UnknownScheme", `store: { dsn: "mysql://root:secret@db/x" }`, "", `its scheme "mysql" names no store`},
		{"SQLiteHasNoDSN", `store: { driver: sqlite, dsn: "postgres://db/x" }`, "", "SQLite keeps its database in server.data_dir"},
		{"PostgresNeedsADSN", `store: { driver: postgres }`, "", "store.dsn is required with driver postgres"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := registry.Parse("x.yaml", []byte(tc.store+"\n"+minimal), lookupTestEnv)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one saying %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("the error shows the DSN's password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Store.Driver != tc.driver {
				t.Fatalf("driver %q, want %q", cfg.Store.Driver, tc.driver)
			}
		})
	}
}
