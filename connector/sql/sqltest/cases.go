package sqltest

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"erasure"
	sqlconn "erasure/connector/sql"
)

const usersDDL = `CREATE TABLE users (id BIGINT NOT NULL, email TEXT, name TEXT, status TEXT, region TEXT, archived_at TEXT, tenant TEXT)`

var userCols = []string{"id", "email", "name", "status", "region", "archived_at", "tenant"}

func user(id int, email string) []any {
	return []any{id, email, "name " + strconv.Itoa(id), "active", "eu", nil, "t1"}
}

func testDelete(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	rows := [][]any{user(42, "a@example.com"), user(42, "a2@example.com"), user(42, "a3@example.com")}
	for i := 1; i <= 10; i++ {
		rows = append(rows, user(i, "u"+strconv.Itoa(i)+"@example.com"))
	}
	e.insert("users", userCols, rows)
	cfg := e.load(`
  - name: app.users
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id }, action: delete }
`)
	d := cfg.Dataset("app.users")
	if !slices.Equal(d.Keys, []string{"user_id"}) {
		t.Errorf("Keys = %v, want [user_id]", d.Keys)
	}
	s := subject("user_id", "42")
	if !e.holds(d, s) {
		t.Fatal("Holds before Erase = false, want true")
	}
	wantRemoved(t, "first erase", e.erase(d, s), 3)
	wantCount(t, "rows of user 42", e.count("users", "id = ?", 42), 0)
	wantCount(t, "other rows", e.count("users", ""), 10)
	wantRemoved(t, "second erase", e.erase(d, s), 0)
}

func testRedactNull(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	e.insert("users", userCols, [][]any{user(42, "a@example.com"), user(42, "b@example.com"), user(1, "c@example.com"), user(2, "d@example.com")})
	cfg := e.load(`
  - name: app.users
    owner: app
    connector: sql
    sql:
      driver: DRIVER
      dsn: ${DSN}
      table: users
      key: { column: id, identifier: user_id }
      action: redact
      columns: [email, name]
`)
	d := cfg.Dataset("app.users")
	s := subject("user_id", "42")
	if !e.holds(d, s) {
		t.Fatal("Holds before Erase = false, want true")
	}
	wantRemoved(t, "first redact", e.erase(d, s), 2)
	wantCount(t, "rows (redaction keeps them)", e.count("users", ""), 4)
	wantCount(t, "rows of 42 with email or name", e.count("users", "id = ? AND (email IS NOT NULL OR name IS NOT NULL)", 42), 0)
	wantCount(t, "rows of 42 with status kept", e.count("users", "id = ? AND status = ?", 42, "active"), 2)
	wantCount(t, "other rows untouched", e.count("users", "id <> ? AND email IS NOT NULL AND name IS NOT NULL", 42), 2)
	wantRemoved(t, "second redact", e.erase(d, s), 0)
}

func testRedactReplacement(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	e.insert("users", userCols, [][]any{
		user(42, "a@example.com"), user(42, "b@example.com"),
		{42, nil, "[erased]", "active", "eu", nil, "t1"}, // already redacted
		user(1, "c@example.com"),
	})
	cfg := e.load(`
  - name: app.users
    owner: app
    connector: sql
    sql:
      driver: DRIVER
      dsn: ${DSN}
      table: users
      key: { column: id, identifier: user_id }
      action: redact
      columns: [email]
      set: { name: "[erased]" }
`)
	d := cfg.Dataset("app.users")
	s := subject("user_id", "42")
	wantRemoved(t, "first redact (one row was already redacted)", e.erase(d, s), 2)
	wantCount(t, "rows of 42 redacted", e.count("users", "id = ? AND email IS NULL AND name = ?", 42, "[erased]"), 3)
	wantCount(t, "other row untouched", e.count("users", "id = ? AND email = ? AND name = ?", 1, "c@example.com", "name 1"), 1)
	wantRemoved(t, "second redact", e.erase(d, s), 0)
}

func testComposite(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	e.insert("users", userCols, [][]any{
		{42, "a@example.com", "n", "active", "eu", nil, "t1"},
		{42, "b@example.com", "n", "active", "eu", nil, "t2"},
		{43, "c@example.com", "n", "active", "eu", nil, "t1"},
	})
	cfg := e.load(`
  - name: app.users
    owner: app
    connector: sql
    sql:
      driver: DRIVER
      dsn: ${DSN}
      table: users
      keys: [ { column: tenant, identifier: tenant_id }, { column: id, identifier: user_id } ]
`)
	d := cfg.Dataset("app.users")
	if !slices.Equal(d.Keys, []string{"tenant_id", "user_id"}) {
		t.Errorf("Keys = %v, want [tenant_id user_id]", d.Keys)
	}
	t.Run("AllKeysMustMatch", func(t *testing.T) {
		e := e.sub(t)
		wantRemoved(t, "erase t1/42", e.erase(d, subject("tenant_id", "t1", "user_id", "42")), 1)
		wantCount(t, "rows left", e.count("users", ""), 2)
		wantCount(t, "t2/42 kept", e.count("users", "tenant = ? AND id = ?", "t2", 42), 1)
		wantCount(t, "t1/43 kept", e.count("users", "tenant = ? AND id = ?", "t1", 43), 1)
	})
	t.Run("MissingKeyTypeIsSkipped", func(t *testing.T) {
		e := e.sub(t)
		out, err := eraser(t, d).Erase(e.ctx, subject("user_id", "42"))
		if err != nil || out.Removed != 0 {
			t.Fatalf("Erase without tenant_id = %+v, %v; want nothing removed, no error", out, err)
		}
		wantCount(t, "rows left", e.count("users", ""), 2)
	})
}

func testWhere(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	e.insert("users", userCols, [][]any{
		{42, "1", "n", "active", "eu", nil, "t1"},          // erased
		{42, "2", "n", "active", "uk", nil, "t1"},          // erased
		{42, "3", "n", "inactive", "eu", nil, "t1"},        // status differs
		{42, "4", "n", "active", "us", nil, "t1"},          // region not in the list
		{42, "5", "n", "active", "eu", "2020-01-01", "t1"}, // archived
		{43, "6", "n", "active", "eu", nil, "t1"},          // another user
	})
	cfg := e.load(`
  - name: app.users
    owner: app
    connector: sql
    sql:
      driver: DRIVER
      dsn: ${DSN}
      table: users
      key: { column: id, identifier: user_id }
      where:
        - { column: status, equals: "active" }
        - { column: region, in: [eu, uk] }
        - { column: archived_at, is_null: true }
`)
	d := cfg.Dataset("app.users")
	wantRemoved(t, "erase", e.erase(d, subject("user_id", "42")), 2)
	wantCount(t, "rows of 42 outside the restriction", e.count("users", "id = ?", 42), 3)
	wantCount(t, "rows erased", e.count("users", "email IN (?, ?)", "1", "2"), 0)
	wantCount(t, "other user", e.count("users", "id = ?", 43), 1)
}

func testWhereOnNumbers(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(`CREATE TABLE scores (user_id BIGINT, season BIGINT, points BIGINT)`)
	e.insert("scores", []string{"user_id", "season", "points"}, [][]any{{42, 2024, 1}, {42, 2025, 2}, {42, 2026, 3}, {43, 2025, 4}})
	cfg := e.load(`
  - name: app.scores
    owner: app
    connector: sql
    sql:
      driver: DRIVER
      dsn: ${DSN}
      table: scores
      key: { column: user_id, identifier: user_id }
      action: redact
      set: { points: "0" }
      where: [ { column: season, in: ["2025", "2026"] } ]
`)
	wantRemoved(t, "redact", e.erase(cfg.Dataset("app.scores"), subject("user_id", "42")), 2)
	wantCount(t, "redacted rows", e.count("scores", "points = ?", 0), 2)
	wantCount(t, "season 2024 kept", e.count("scores", "season = ? AND points = ?", 2024, 1), 1)
	wantCount(t, "other user kept", e.count("scores", "user_id = ? AND points = ?", 43, 4), 1)
}

func testZeroRows(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	e.insert("users", userCols, [][]any{user(1, "a@example.com")})
	cfg := e.load(`
  - name: app.users
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id } }
`)
	d := cfg.Dataset("app.users")
	s := subject("user_id", "999")
	if e.holds(d, s) {
		t.Error("Holds of an absent subject = true")
	}
	wantRemoved(t, "erase of an absent subject", e.erase(d, s), 0)
	wantCount(t, "rows", e.count("users", ""), 1)
}

func testLarge(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	e.exec(`CREATE INDEX users_id ON users (id)`)
	const mine, others = 25_000, 5_000
	rows := make([][]any, 0, mine+others)
	for i := 0; i < mine; i++ {
		rows = append(rows, []any{7, "e" + strconv.Itoa(i), "n", "active", "eu", nil, "t1"})
	}
	for i := 0; i < others; i++ {
		rows = append(rows, []any{1000 + i, "o" + strconv.Itoa(i), "n", "active", "eu", nil, "t1"})
	}
	e.insert("users", userCols, rows)
	cfg := e.load(`
  - name: app.redact
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id }, action: redact, columns: [email], batch: 700 }
  - name: app.delete
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id }, batch: 1000 }
`)
	s := subject("user_id", "7")
	before := e.count("users", "id <> ?", 7)
	wantCount(t, "other rows before", before, others)
	rd, dd := cfg.Dataset("app.redact"), cfg.Dataset("app.delete")
	if !e.holds(rd, s) || !e.holds(dd, s) {
		t.Fatal("Holds before Erase = false, want true")
	}
	wantRemoved(t, "redact", e.erase(rd, s), mine)
	wantCount(t, "rows after redact", e.count("users", ""), mine+others)
	if !e.holds(dd, s) {
		t.Fatal("Holds of the delete dataset after the redaction = false, want true")
	}
	wantRemoved(t, "delete", e.erase(dd, s), mine)
	wantCount(t, "other rows after", e.count("users", "id <> ?", 7), before)
	wantCount(t, "other rows with their email", e.count("users", "email IS NOT NULL"), others)
}

func testManyValues(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	var rows [][]any
	for i := 1; i <= 1500; i++ {
		rows = append(rows, user(i, "u"+strconv.Itoa(i)))
	}
	e.insert("users", userCols, rows)
	cfg := e.load(`
  - name: app.users
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id }, batch: 100 }
`)
	var ids []string
	for i := 1; i <= 1200; i++ {
		ids = append(ids, "user_id", strconv.Itoa(i))
	}
	wantRemoved(t, "erase of 1,200 values", e.erase(cfg.Dataset("app.users"), subject(ids...)), 1200)
	wantCount(t, "rows left", e.count("users", ""), 300)
	wantCount(t, "rows left above 1200", e.count("users", "id > ?", 1200), 300)
}

func testSchema(t *testing.T, tg Target) {
	if tg.Schema == nil {
		t.Skip("this target has no schemas")
	}
	e := newEnv(t, tg)
	e.exec(usersDDL)
	e.insert("users", userCols, [][]any{user(42, "a"), user(1, "b")})
	cfg := e.load(`
  - name: app.users
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", schema: ` + tg.Schema(e.dsn) + `, table: users, key: { column: id, identifier: user_id } }
`)
	wantRemoved(t, "erase", e.erase(cfg.Dataset("app.users"), subject("user_id", "42")), 1)
	wantCount(t, "rows left", e.count("users", ""), 1)
}

func testLookupChain(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(`CREATE TABLE emails (email TEXT, user_id BIGINT)`)
	e.exec(`CREATE TABLE members (id BIGINT, account_id BIGINT)`)
	e.exec(`CREATE TABLE accounts (id BIGINT, plan TEXT)`)
	e.insert("emails", []string{"email", "user_id"}, [][]any{{"a@example.com", 42}, {"b@example.com", 43}, {"", 42}})
	e.insert("members", []string{"id", "account_id"}, [][]any{{42, 7}, {42, nil}, {43, 8}})
	e.insert("accounts", []string{"id", "plan"}, [][]any{{7, "gold"}, {8, "free"}})
	cfg := e.load(`
  - name: app.emails
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: emails, key: { column: email, identifier: email } }
    provides: [ { identifier: user_id, column: user_id } ]
  - name: app.members
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: members, key: { column: id, identifier: user_id } }
    provides: [ { identifier: account_id, column: account_id } ]
  - name: app.accounts
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: accounts, key: { column: id, identifier: account_id } }
    provides: [ { identifier: email, column: plan } ]
`)
	s := subject("email", "a@example.com")
	rounds := 0
	for {
		rounds++
		var added []erasure.Identifier
		for _, d := range cfg.Datasets {
			r, ok := d.Conn.(erasure.Resolver)
			if !ok {
				t.Fatalf("dataset %s is not a Resolver", d.Name)
			}
			ids, err := r.Resolve(e.ctx, s)
			if err != nil {
				t.Fatalf("Resolve %s: %v", d.Name, err)
			}
			for _, id := range ids {
				want := d.Provides[0].Identifier
				if id.Type != want {
					t.Errorf("Resolve %s returned type %s, want only %s", d.Name, id.Type, want)
				}
			}
			var more []erasure.Identifier
			s, more = s.With(ids...)
			added = append(added, more...)
		}
		if len(added) == 0 || rounds > 10 {
			break
		}
	}
	want := subject("email", "a@example.com", "user_id", "42", "account_id", "7", "email", "gold")
	if !slices.Equal(s, want) {
		t.Fatalf("resolved subject = %v, want %v", s, want)
	}
	for _, d := range cfg.Datasets {
		e.erase(d, s)
	}
	wantCount(t, "emails left (b@example.com, and 42's empty one, not keyed by an e-mail of the subject)", e.count("emails", ""), 2)
	wantCount(t, "email of 43 kept", e.count("emails", "user_id = ?", 43), 1)
	wantCount(t, "members left", e.count("members", ""), 1)
	wantCount(t, "accounts left", e.count("accounts", ""), 1)
	wantCount(t, "account 8 kept", e.count("accounts", "id = ?", 8), 1)
}

// hostileValues are identifier values that must be bound, never spliced: quotes, SQL, LIKE
// wildcards, NUL bytes, invalid UTF-8, a 1 MB string, unicode.
var hostileValues = []string{
	`'`, `"`, "`", `\`, `''`, `'; DROP TABLE bystanders; --`, `" OR "1"="1`, `' OR '1'='1`,
	`1 OR 1=1`, `42; DELETE FROM users`, `42)`, `%`, `_`, `*`, "a\x00b", "\x00", "42\x00",
	"\xff\xfe", strings.Repeat("x", 1<<20), "ü字🎉", "\u202e42", "$1", "?",
}

// storedHostile are the hostile values stored in rows, erased exactly.
var storedHostile = []string{`'; DROP TABLE bystanders; --`, `'`, `" OR "1"="1`, "ü字🎉", `%`}

func testHostile(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(`CREATE TABLE users (id BIGINT, email TEXT)`)
	e.exec(`CREATE TABLE bystanders (id BIGINT)`)
	e.insert("bystanders", []string{"id"}, [][]any{{1}, {2}, {3}})
	var rows [][]any
	// Ids a lenient conversion of the hostile values would hit (MySQL compares '42; ...' with
	// an integer column as 42, and a non-number as 0).
	plain := []int{0, 1, 2, 42, 43}
	for _, i := range plain {
		rows = append(rows, []any{i, "u" + strconv.Itoa(i) + "@example.com"})
	}
	for i, v := range storedHostile {
		rows = append(rows, []any{100 + i, v})
	}
	e.insert("users", []string{"id", "email"}, rows)
	cfg := e.load(`
  - name: app.by-id
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id } }
    provides: [ { identifier: email, column: email } ]
  - name: app.by-email
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: email, identifier: email }, action: redact, set: { email: "[erased]" } }
    provides: [ { identifier: user_id, column: id } ]
`)
	byID, byEmail := cfg.Dataset("app.by-id"), cfg.Dataset("app.by-email")
	total := e.count("users", "")
	for i, v := range hostileValues {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			e := e.sub(t)
			for _, c := range []struct {
				d   *erasure.Dataset
				typ string
			}{{byID, "user_id"}, {byEmail, "email"}} {
				s := subject(c.typ, v)
				want := int64(0)
				if c.typ == "email" && slices.Contains(storedHostile, v) {
					want = 1
					ids, err := c.d.Conn.(erasure.Resolver).Resolve(e.ctx, s)
					if err != nil || len(ids) != 1 || ids[0].Type != "user_id" {
						t.Errorf("Resolve %s of a stored hostile value = %v, %v; want its user_id", c.d.Name, ids, err)
					}
				} else if _, err := c.d.Conn.(erasure.Resolver).Resolve(e.ctx, s); err != nil {
					t.Errorf("Resolve %s: %v", c.d.Name, err)
				}
				wantRemoved(t, c.d.Name, e.erase(c.d, s), want)
			}
		})
	}
	wantCount(t, "bystanders", e.count("bystanders", ""), 3)
	wantCount(t, "users (the hostile e-mails are redacted, not deleted)", e.count("users", ""), total)
	wantCount(t, "redacted rows", e.count("users", "email = ?", "[erased]"), int64(len(storedHostile)))
	wantCount(t, "plain rows intact", e.count("users", "email LIKE ?", "u%@example.com"), 5)
}

func testForeignKey(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(`CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT)`)
	e.exec(`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT, CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id))`)
	e.insert("users", []string{"id", "email"}, [][]any{{42, "a"}, {43, "b"}})
	e.insert("orders", []string{"id", "user_id"}, [][]any{{1, 42}, {2, 42}, {3, 43}})
	const users = `
  - name: app.users
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id } }
`
	const orders = `
  - name: shop.orders
    owner: shop
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: orders, key: { column: user_id, identifier: user_id } }
`
	s := subject("user_id", "42")
	check := func(t *testing.T, e *env, err error, fix string) {
		t.Helper()
		if err == nil {
			t.Fatal("Erase of referenced rows succeeded; want a foreign-key error")
		}
		if !erasure.IsPermanent(err) {
			t.Errorf("error is not permanent: %v", err)
		}
		var fk *sqlconn.ForeignKeyError
		if !errors.As(err, &fk) {
			t.Fatalf("error is not a *ForeignKeyError: %v", err)
		}
		if !strings.Contains(fk.Referencing, "orders") {
			t.Errorf("Referencing = %q, want the orders table", fk.Referencing)
		}
		if tg.Driver != "sqlite" && fk.Constraint != "orders_user_fk" {
			t.Errorf("Constraint = %q, want orders_user_fk", fk.Constraint)
		}
		if !strings.Contains(err.Error(), fix) {
			t.Errorf("error %q does not say %q", err, fix)
		}
		wantCount(t, "users", e.count("users", ""), 2)
		wantCount(t, "orders", e.count("orders", ""), 3)
	}
	t.Run("NamesTheDatasetToOrderFirst", func(t *testing.T) {
		e := e.sub(t)
		cfg := e.load(users + orders)
		_, err := eraser(t, cfg.Dataset("app.users")).Erase(e.ctx, s)
		check(t, e, err, "add `after: [shop.orders]` to dataset app.users")
		wantRemoved(t, "orders", e.erase(cfg.Dataset("shop.orders"), s), 2)
		wantRemoved(t, "users after orders", e.erase(cfg.Dataset("app.users"), s), 1)
	})
	t.Run("NamesTheTableWithoutDataset", func(t *testing.T) {
		e := e.sub(t)
		cfg := e.load(users)
		_, err := eraser(t, cfg.Dataset("app.users")).Erase(e.ctx, subject("user_id", "43"))
		check := func(err error) {
			t.Helper()
			if err == nil || !erasure.IsPermanent(err) || !strings.Contains(err.Error(), "no dataset erases table") || !strings.Contains(err.Error(), "orders") {
				t.Errorf("Erase = %v; want a permanent error saying no dataset erases table orders", err)
			}
		}
		check(err)
		wantCount(t, "users", e.count("users", ""), 1)
	})
}

func testCheck(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	e.insert("users", userCols, [][]any{user(42, "a"), user(1, "b")})
	cfg := e.load(`
  - name: app.good
    owner: app
    connector: sql
    sql:
      driver: DRIVER
      dsn: ${DSN}
      table: users
      keys: [ { column: tenant, identifier: tenant_id }, { column: id, identifier: user_id } ]
      action: redact
      columns: [email]
      set: { name: x }
      where: [ { column: status, equals: active } ]
    provides: [ { identifier: email, column: email } ]
  - name: app.missing-columns
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id }, action: redact, columns: [email, nickname], where: [ { column: deleted, is_null: true } ] }
    provides: [ { identifier: email, column: ghost } ]
  - name: app.missing-table
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: people, key: { column: id, identifier: user_id } }
`)
	checker := func(name string) erasure.Checker {
		c, ok := cfg.Dataset(name).Conn.(erasure.Checker)
		if !ok {
			t.Fatalf("dataset %s is not a Checker", name)
		}
		return c
	}
	t.Run("Passes", func(t *testing.T) {
		if err := checker("app.good").Check(e.ctx); err != nil {
			t.Errorf("Check = %v, want nil", err)
		}
	})
	t.Run("NamesMissingColumns", func(t *testing.T) {
		err := checker("app.missing-columns").Check(e.ctx)
		if err == nil {
			t.Fatal("Check = nil, want an error")
		}
		for _, col := range []string{"nickname", "deleted", "ghost"} {
			if !strings.Contains(err.Error(), col) {
				t.Errorf("Check error %q does not name column %s", err, col)
			}
		}
		if strings.Contains(err.Error(), "column email") {
			t.Errorf("Check error %q names email, which exists", err)
		}
	})
	t.Run("NamesMissingTable", func(t *testing.T) {
		err := checker("app.missing-table").Check(e.ctx)
		if err == nil || !strings.Contains(err.Error(), "people") {
			t.Errorf("Check = %v, want an error naming table people", err)
		}
	})
	wantCount(t, "rows (Check erases nothing)", e.count("users", ""), 2)
	wantCount(t, "emails (Check erases nothing)", e.count("users", "email IS NOT NULL"), 2)
}

func testSchemaErrors(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	e.insert("users", userCols, [][]any{user(42, "a")})
	cfg := e.load(`
  - name: app.missing-column
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id }, action: redact, columns: [nickname] }
  - name: app.missing-table
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: people, key: { column: id, identifier: user_id } }
`)
	for _, d := range cfg.Datasets {
		t.Run(d.Name, func(t *testing.T) {
			_, err := eraser(t, d).Erase(e.ctx, subject("user_id", "42"))
			if err == nil || !erasure.IsPermanent(err) {
				t.Errorf("Erase = %v, want a permanent error", err)
			}
		})
	}
	wantCount(t, "rows", e.count("users", "email IS NOT NULL"), 1)

	t.Run("FixTakesEffectWithoutRestart", func(t *testing.T) {
		e := e.sub(t)
		e.exec(`ALTER TABLE users ADD nickname TEXT`)
		e.exec(`CREATE TABLE people (id BIGINT)`)
		e.insert("people", []string{"id"}, [][]any{{42}, {43}})
		wantRemoved(t, "redact after adding the column", e.erase(cfg.Dataset("app.missing-column"), subject("user_id", "42")), 0)
		wantRemoved(t, "delete after creating the table", e.erase(cfg.Dataset("app.missing-table"), subject("user_id", "42")), 1)
	})
}

func testSharedPool(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	before := sqlconn.OpenPools()
	cfg, err := e.parse(`
  - name: app.a
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id } }
  - name: app.b
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: email, identifier: email } }
`)
	if err != nil {
		t.Fatal(err)
	}
	e.erase(cfg.Dataset("app.a"), subject("user_id", "1"))
	e.erase(cfg.Dataset("app.b"), subject("email", "a"))
	if got := sqlconn.OpenPools(); got != before+1 {
		t.Errorf("open pools = %d, want %d (one shared by both datasets)", got, before+1)
	}
	cfg.Dataset("app.a").Conn.Close()
	if got := sqlconn.OpenPools(); got != before+1 {
		t.Errorf("open pools after closing one dataset = %d, want %d", got, before+1)
	}
	cfg.Dataset("app.b").Conn.Close()
	if got := sqlconn.OpenPools(); got != before {
		t.Errorf("open pools after closing both = %d, want %d", got, before)
	}
}

// testConcurrent erases from many goroutines at once on a connector's first use, as the
// pipeline's workers do.
func testConcurrent(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	e.exec(usersDDL)
	var rows [][]any
	for i := 0; i < 200; i++ {
		rows = append(rows, user(i, "u"+strconv.Itoa(i)), user(i, "v"+strconv.Itoa(i)))
	}
	e.insert("users", userCols, rows)
	cfg := e.load(`
  - name: app.users
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id } }
`)
	c := eraser(t, cfg.Dataset("app.users"))
	var wg sync.WaitGroup
	var removed atomic.Int64
	errs := make(chan error, 100)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 100; i += 4 {
				out, err := c.Erase(e.ctx, subject("user_id", strconv.Itoa(i)))
				if err != nil {
					errs <- err
					return
				}
				removed.Add(out.Removed)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Erase: %v", err)
	}
	wantRemoved(t, "100 subjects erased at once", removed.Load(), 200)
	wantCount(t, "rows left", e.count("users", ""), 200)
	wantCount(t, "rows of erased subjects", e.count("users", "id < ?", 100), 0)
}

// testExactMatch: a key is matched exactly, whatever the column's collation: MariaDB's
// default collation ignores case, accents and trailing spaces, SQLite's NOCASE ignores case;
// erasing "3 ", "alice" or "e" must not erase the rows of "3", "Alice" or "é".
func testExactMatch(t *testing.T, tg Target) {
	e := newEnv(t, tg)
	switch tg.Driver {
	case "mysql":
		e.exec(`CREATE TABLE accounts (uid VARCHAR(64) NOT NULL, note VARCHAR(64)) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`)
	case "sqlite":
		e.exec(`CREATE TABLE accounts (uid TEXT COLLATE NOCASE NOT NULL, note TEXT)`)
	default:
		e.exec(`CREATE TABLE accounts (uid TEXT NOT NULL, note TEXT)`)
	}
	e.insert("accounts", []string{"uid", "note"}, [][]any{{"3", "three"}, {"Alice", "alice"}, {"é", "e acute"}, {"Bob", "bob"}})
	cfg := e.load(`
  - name: app.accounts
    owner: app
    connector: sql
    sql: { driver: DRIVER, dsn: "${DSN}", table: accounts, key: { column: uid, identifier: account_id }, action: delete }
`)
	d := cfg.Dataset("app.accounts")
	near := []string{"3 ", "alice", "ALICE", "e", "é ", "bob"}
	for _, v := range near {
		s := subject("account_id", v)
		if e.holds(d, s) {
			t.Errorf("Holds(%q) = true: another subject's row matched", v)
		}
		wantRemoved(t, "erasing "+strconv.Quote(v), e.erase(d, s), 0)
	}
	var all []string
	for _, v := range near {
		all = append(all, "account_id", v)
	}
	wantRemoved(t, "erasing them all at once", e.erase(d, subject(all...)), 0)
	wantCount(t, "rows after erasing near misses", e.count("accounts", ""), 4)
	wantRemoved(t, "erasing 3 and Alice", e.erase(d, subject("account_id", "3", "account_id", "Alice")), 2)
	wantRemoved(t, "erasing é", e.erase(d, subject("account_id", "é")), 1)
	wantCount(t, "rows left", e.count("accounts", ""), 1)
}
