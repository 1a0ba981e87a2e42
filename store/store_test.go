package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"erasure"
	"erasure/store"
	_ "erasure/store/postgres"
	_ "erasure/store/sqlite"
	"erasure/store/sqlstore"
	"erasure/store/storetest"
)

func TestOpen_ByDriver(t *testing.T) {
	ctx := context.Background()
	if got := strings.Join(store.Drivers(), ","); got != "postgres,sqlite" {
		t.Fatalf("drivers %q", got)
	}
	t.Run("NoDriverIsSQLiteInTheDataDir", func(t *testing.T) {
		dir := t.TempDir()
		db, d, err := store.Open(ctx, store.Config{DataDir: dir, Hasher: storetest.Hasher, Chain: storetest.Chain})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if d.Shared || db.Dialect() != "sqlite" {
			t.Fatalf("shared %v, dialect %s", d.Shared, db.Dialect())
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "erasure.db")); len(m) != 1 {
			t.Fatal("no erasure.db in the data dir")
		}
	})
	t.Run("PostgresIsShared", func(t *testing.T) {
		d, err := store.Lookup("postgres")
		if err != nil || !d.Shared {
			t.Fatalf("postgres: %+v %v", d, err)
		}
	})
	t.Run("BadConfigurationsAreRefused", func(t *testing.T) {
		for name, c := range map[string]store.Config{
			"UnknownDriver":   {Driver: "oracle"},
			"SQLiteWithDSN":   {Driver: "sqlite", DSN: "postgres://db/x", DataDir: t.TempDir()},
			"PostgresWithout": {Driver: "postgres"},
		} {
			if _, _, err := store.Open(ctx, c); erasure.ErrorCode(err) != erasure.EINVALID {
				t.Errorf("%s: %v, want EINVALID", name, err)
			}
		}
		_, err := store.Lookup("oracle")
		if err == nil || !strings.Contains(err.Error(), "postgres, sqlite") {
			t.Errorf("unknown driver: %v, want the list of drivers", err)
		}
	})
	t.Run("RegisteringTwicePanics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		store.Register("sqlite", store.Driver{Open: func(context.Context, store.Config) (*sqlstore.DB, error) { return nil, nil }})
	})
}
