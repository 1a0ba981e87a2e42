package scan_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/parquet-go/parquet-go"
	"github.com/redis/go-redis/v9"

	"erasure"
	"erasure/audit"
	_ "erasure/connector/files"
	_ "erasure/connector/redis"
	_ "erasure/connector/sql"
	"erasure/internal/testenv"
	"erasure/pipeline"
	"erasure/registry"
	"erasure/scan"
	"erasure/store/sqlite"
)

// estate is a PostgreSQL schema, a MariaDB database, a Redis key prefix and three snapshot
// directories, private to one test, with the registry that declares part of them.
type estate struct {
	t        *testing.T
	pgDSN    string
	pg       *sql.DB
	schema   string
	myDSN    string
	my       *sql.DB
	database string
	rdb      *redis.Client
	redisURL string
	prefix   string
	dir      string
	env      map[string]string
	file     string
}

// registryYAML declares the estate: one table of PostgreSQL, one of MariaDB, one Redis key
// family and three snapshots. Everything else is unregistered.
const registryYAML = `version: 1
identifiers:
  - user_id
  - { name: email, normalize: lower, trim: true, scan: { names: ["e?mail", "contact"] } }
  - { name: phone, normalize: digits }
  - ip
defaults: { backoff: { initial: 10ms, max: 100ms } }
datasets:
  - name: accounts.users
    owner: accounts-team
    connector: sql
    sql: { driver: postgres, dsn: "${SCAN_PG_DSN}", table: users, key: { column: id, identifier: user_id } }
    provides: [ { identifier: email, column: email } ]
  - name: shop.orders
    owner: shop-team
    connector: sql
    sql: { driver: mariadb, dsn: "${SCAN_MY_DSN}", table: orders, key: { column: user_id, identifier: user_id } }
  - name: timeline-cache
    owner: timeline-team
    connector: redis
    redis: { url: "${SCAN_REDIS_URL}", keys: ["${SCAN_PREFIX}:timeline:{user_id}"] }
  - name: warehouse.events
    owner: data-team
    connector: files
    files: { path: "${SCAN_DIR}/events", format: jsonl, key: { field: user_id, identifier: user_id } }
  - name: warehouse.exports
    owner: data-team
    connector: files
    files: { path: "${SCAN_DIR}/exports", format: csv, key: { field: user_id, identifier: user_id } }
  - name: warehouse.sessions
    owner: data-team
    connector: files
    files: { path: "${SCAN_DIR}/sessions", format: parquet, key: { field: user_id, identifier: user_id } }
`

func newEstate(t *testing.T) *estate {
	t.Helper()
	e := &estate{t: t, dir: t.TempDir()}
	testenv.Address(t, "ERASURE_TEST_POSTGRES")
	testenv.Address(t, "ERASURE_TEST_MYSQL")
	e.redisURL = testenv.Address(t, "ERASURE_TEST_REDIS")

	e.pgDSN = testenv.PostgresSchema(t, "scan")
	u, _ := url.Parse(e.pgDSN)
	e.schema = u.Query().Get("search_path")
	e.myDSN = testenv.MySQLDatabase(t, "scan")
	mc, _ := mysql.ParseDSN(e.myDSN)
	e.database = mc.DBName
	var err error
	if e.pg, err = sql.Open("pgx", e.pgDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.pg.Close() })
	if e.my, err = sql.Open("mysql", e.myDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.my.Close() })
	opts, err := redis.ParseURL(e.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	e.rdb = redis.NewClient(opts)
	t.Cleanup(func() { e.rdb.Close() })
	e.prefix = testenv.Name("scan")
	if err := e.rdb.Ping(t.Context()).Err(); err != nil {
		testenv.Unavailable(t, "ERASURE_TEST_REDIS", err)
	}
	t.Cleanup(e.dropKeys)

	e.env = map[string]string{"SCAN_PG_DSN": e.pgDSN, "SCAN_MY_DSN": e.myDSN, "SCAN_REDIS_URL": e.redisURL,
		"SCAN_PREFIX": e.prefix, "SCAN_DIR": e.dir}
	e.file = filepath.Join(e.dir, "erasure.yaml")
	if err := os.WriteFile(e.file, []byte(registryYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	e.seed()
	return e
}

func (e *estate) lookup(k string) (string, bool) { v, ok := e.env[k]; return v, ok }

// config parses the registry (with extra datasets appended, indented under datasets:).
func (e *estate) config(extra string) (*registry.Config, error) {
	src := registryYAML
	for _, l := range strings.Split(extra, "\n") {
		if l != "" {
			src += "  " + l + "\n"
		}
	}
	path := e.file
	if extra != "" {
		path = filepath.Join(e.dir, "extended.yaml")
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	cfg, err := registry.Parse(path, []byte(src), e.lookup)
	if err == nil {
		e.t.Cleanup(func() {
			for _, d := range cfg.Datasets {
				d.Conn.Close()
			}
		})
	}
	return cfg, err
}

func (e *estate) dropKeys() {
	ctx := context.Background()
	iter := e.rdb.Scan(ctx, 0, e.prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		e.rdb.Del(ctx, iter.Val())
	}
}

func (e *estate) exec(db *sql.DB, stmts ...string) {
	e.t.Helper()
	for _, s := range stmts {
		if _, err := db.ExecContext(context.Background(), s); err != nil {
			e.t.Fatalf("%s: %v", s, err)
		}
	}
}

// seed fills the estate. Users 1001 to 1040 exist; 1001 is the subject erased later. The
// planted unregistered places are users.phone, newsletter.email_address (PostgreSQL),
// tickets.requester_email, page_views.user_id (MariaDB), the contact field of the events,
// the phone column of the exports, the client_ip column of the sessions, and the Redis family
// profile:{email}. products, settings, inventory, counters, sessions and flags are clean, with
// the number 1001 in places that are not user ids.
func (e *estate) seed() {
	t := e.t
	e.exec(e.pg,
		`CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT NOT NULL, name TEXT, phone TEXT)`,
		`INSERT INTO users SELECT i, 'u' || i || '@example.com', 'Person ' || i, '+44 20 7946 ' || i FROM generate_series(1001, 1040) i`,
		`CREATE TABLE newsletter (id SERIAL PRIMARY KEY, email_address TEXT NOT NULL, signed_up DATE)`,
		`INSERT INTO newsletter (email_address, signed_up) SELECT 'n' || i || '@example.net', DATE '2024-01-01' + i FROM generate_series(1, 19) i`,
		`INSERT INTO newsletter (email_address, signed_up) VALUES ('u1001@example.com', DATE '2024-02-01')`,
		`CREATE TABLE products (id SERIAL PRIMARY KEY, title TEXT, price_cents INT, sku TEXT, created_at TIMESTAMPTZ)`,
		`INSERT INTO products (title, price_cents, sku, created_at) SELECT 'Mug ' || i, 1000 + i, 'SKU-' || i, TIMESTAMPTZ '2024-01-15 10:00:00+00' FROM generate_series(1, 30) i`,
		`CREATE TABLE settings (key TEXT PRIMARY KEY, value JSONB)`,
		`INSERT INTO settings VALUES ('ui', '{"theme": "dark", "limit": 1001}'), ('mail', '{"server": "smtp.internal", "port": 25}')`)
	// Rows are written out rather than generated: MySQL has no generate_series.
	values := func(from, to int, row func(i int) string) string {
		var rows []string
		for i := from; i <= to; i++ {
			rows = append(rows, row(i))
		}
		return strings.Join(rows, ", ")
	}
	e.exec(e.my,
		`CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, user_id BIGINT NOT NULL, total_cents INT, created_at DATETIME)`,
		`INSERT INTO orders (user_id, total_cents, created_at) VALUES `+values(1001, 1020, func(i int) string { return fmt.Sprintf("(%d, 1001, '2024-01-15 10:00:00')", i) }),
		`INSERT INTO orders (user_id, total_cents, created_at) VALUES `+values(1001, 1020, func(i int) string { return fmt.Sprintf("(%d, 250, '2024-02-15 10:00:00')", i) }),
		`CREATE TABLE tickets (id INT AUTO_INCREMENT PRIMARY KEY, requester_email VARCHAR(200), subject VARCHAR(200))`,
		`INSERT INTO tickets (requester_email, subject) VALUES `+values(1, 15, func(i int) string { return fmt.Sprintf("('t%d@example.com', 'Where is my order?')", i) }),
		`INSERT INTO tickets (requester_email, subject) VALUES ('u1001@example.com', 'Delete my account')`,
		`CREATE TABLE page_views (id INT AUTO_INCREMENT PRIMARY KEY, user_id BIGINT, path VARCHAR(200))`,
		`INSERT INTO page_views (user_id, path) VALUES `+values(1002, 1030, func(i int) string { return fmt.Sprintf("(%d, '/home')", i) }),
		`CREATE TABLE inventory (sku VARCHAR(50) PRIMARY KEY, qty INT, warehouse VARCHAR(50))`,
		`INSERT INTO inventory VALUES `+values(1, 30, func(i int) string { return fmt.Sprintf("('SKU-%d', %d, 'north')", i, i) }))

	ctx := t.Context()
	pipe := e.rdb.Pipeline()
	for i := 1001; i <= 1020; i++ {
		pipe.Set(ctx, fmt.Sprintf("%s:timeline:%d", e.prefix, i), "post:1,post:2", 0)
		pipe.Set(ctx, fmt.Sprintf("%s:counter:%d", e.prefix, i-1000), "1001", 0)
	}
	for i := 1001; i <= 1010; i++ {
		pipe.HSet(ctx, fmt.Sprintf("%s:profile:u%d@example.com", e.prefix, i), "name", fmt.Sprintf("Person %d", i), "plan", "pro")
	}
	for i := 0; i < 10; i++ {
		pipe.Set(ctx, fmt.Sprintf("%s:session:%08x-1111-4222-8333-%012x", e.prefix, i, i), "active", 0)
	}
	pipe.HSet(ctx, e.prefix+":feature:flags", "dark_mode", "on", "beta", "off")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	for _, d := range []string{"events", "exports", "sessions"} {
		if err := os.MkdirAll(filepath.Join(e.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	event := func(id int) string {
		return fmt.Sprintf(`{"user_id":%d,"event":"click","contact":"c%d@example.org","amount":3.5,"ts":"2024-01-15T10:00:00Z","device":{"os":"ios"}}`+"\n", id, id)
	}
	var plain, zipped bytes.Buffer
	for i := 1001; i <= 1010; i++ {
		plain.WriteString(event(i))
	}
	zw := gzip.NewWriter(&zipped)
	for i := 1011; i <= 1020; i++ {
		zw.Write([]byte(event(i)))
	}
	zw.Close()
	e.write("events/part-0000.jsonl", plain.Bytes())
	e.write("events/part-0001.jsonl.gz", zipped.Bytes())
	var csvRows bytes.Buffer
	csvRows.WriteString("user_id,country,phone\n")
	for i := 1001; i <= 1020; i++ {
		fmt.Fprintf(&csvRows, "%d,FR,+33 1 23 45 %02d %02d\n", i, i%100, i%97)
	}
	e.write("exports/part-0000.csv", csvRows.Bytes())
	type session struct {
		UserID     int64  `parquet:"user_id"`
		ClientIP   string `parquet:"client_ip"`
		DurationMS int64  `parquet:"duration_ms"`
	}
	var rows []session
	for i := 1001; i <= 1020; i++ {
		rows = append(rows, session{UserID: int64(i), ClientIP: fmt.Sprintf("10.0.%d.%d", i/256, i%256), DurationMS: 1001})
	}
	var pq bytes.Buffer
	if err := parquet.Write(&pq, rows); err != nil {
		t.Fatal(err)
	}
	e.write("sessions/part-0000.parquet", pq.Bytes())
}

func (e *estate) write(rel string, data []byte) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, filepath.FromSlash(rel)), data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// erase runs the erasure of user 1001 through the real pipeline (a lookup finds its e-mail
// address; sweeps erase the snapshots) until the request completes, and returns the store.
func (e *estate) erase(cfg *registry.Config) (*sqlite.DB, *audit.Hasher) {
	t := e.t
	ctx, cancel := context.WithCancel(context.Background())
	h, _ := audit.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "erasure.db"), sqlite.Options{Hasher: h, Chain: h.Chain(), Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*erasure.Dataset{}
	for _, d := range cfg.Datasets {
		byName[d.Name] = d
	}
	engine := &pipeline.Engine{Store: st, Datasets: byName, Owner: "test", Poll: 10 * time.Millisecond}
	svc := &pipeline.Service{Store: st, Hasher: h, Chain: h.Chain(), Registered: cfg.Datasets, Identifiers: cfg.Identifiers, DefaultDeadline: time.Hour, Engine: engine}
	sweeper := &pipeline.Sweeper{Store: st, Datasets: byName}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); engine.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait(); st.Close() })

	req, _, err := svc.Submit(ctx, erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "1001"}), Reason: "user_request", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	swept := false
	for {
		r, err := svc.Request(ctx, req.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == erasure.RequestCompleted {
			return st, h
		}
		if r.Status == erasure.RequestFailed || time.Now().After(deadline) {
			t.Fatalf("request %s: %+v", r.Status, r.Tasks)
		}
		queued := 0
		for _, task := range r.Tasks {
			if task.State == erasure.TaskQueued {
				queued++
			}
		}
		if !swept && queued == 3 {
			for _, ds := range []string{"warehouse.events", "warehouse.exports", "warehouse.sessions"} {
				if sw, err := sweeper.SweepNow(ctx, ds, "test"); err != nil || sw.State != erasure.SweepCommitted {
					t.Fatalf("sweep %s: %+v, %v", ds, sw, err)
				}
			}
			swept = true
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// plantResidue brings data of user 1001 back after its request completed: its row in users,
// its timeline key, a new partition of events.
func (e *estate) plantResidue() {
	e.exec(e.pg, `INSERT INTO users VALUES (1001, 'u1001@example.com', 'Ana', NULL)`)
	if err := e.rdb.Set(e.t.Context(), e.prefix+":timeline:1001", "post:9", 0).Err(); err != nil {
		e.t.Fatal(err)
	}
	e.write("events/part-0002.jsonl", []byte(`{"user_id":1001,"event":"login","contact":"c1001@example.org","amount":1,"ts":"2024-03-01T10:00:00Z","device":{"os":"ios"}}`+"\n"))
}

// plant is a finding the estate must give: kind, kind of source, location, identifier type.
type plant struct {
	kind scan.Kind
	src  scan.SourceKind
	loc  string
	typ  string
}

func (p plant) String() string { return fmt.Sprintf("%s %s %s (%s)", p.kind, p.src, p.loc, p.typ) }

func (e *estate) plants() []plant {
	pg := func(loc string) string { return e.schema + "." + loc }
	my := func(loc string) string { return e.database + "." + loc }
	return []plant{
		{scan.Unregistered, scan.SourceSQL, pg("users.phone"), "phone"},
		{scan.Unregistered, scan.SourceSQL, pg("newsletter.email_address"), "email"},
		{scan.Unregistered, scan.SourceSQL, my("tickets.requester_email"), "email"},
		{scan.Unregistered, scan.SourceSQL, my("page_views.user_id"), "user_id"},
		{scan.Unregistered, scan.SourceFiles, "contact", "email"},
		{scan.Unregistered, scan.SourceFiles, "phone", "phone"},
		{scan.Unregistered, scan.SourceFiles, "client_ip", "ip"},
		{scan.Unregistered, scan.SourceRedis, e.prefix + ":profile:{email}", "email"},
		// Erased, then back.
		{scan.Residue, scan.SourceSQL, pg("users.id"), "user_id"},
		{scan.Residue, scan.SourceSQL, pg("users.email"), "email"},
		{scan.Residue, scan.SourceRedis, e.prefix + ":timeline:{user_id}", "user_id"},
		{scan.Residue, scan.SourceFiles, "user_id", "user_id"},
		// Never registered, so never erased.
		{scan.Residue, scan.SourceSQL, pg("newsletter.email_address"), "email"},
		{scan.Residue, scan.SourceSQL, my("tickets.requester_email"), "email"},
		{scan.Residue, scan.SourceRedis, e.prefix + ":profile:{email}", "email"},
	}
}

// TestScan_PlantedEstate erases a subject through the pipeline, brings part of its data back,
// and scans an estate with planted unregistered places: every plant must be found, and
// nothing else (the clean tables, key families and fields hold numbers equal to the erased
// user id, JSON documents, dates, amounts and SKUs). Precision and recall are logged.
func TestScan_PlantedEstate(t *testing.T) {
	e := newEstate(t)
	cfg, err := e.config("")
	if err != nil {
		t.Fatal(err)
	}
	st, h := e.erase(cfg)
	e.plantResidue()

	var progress []string
	var mu sync.Mutex
	start := time.Now()
	rep, err := scan.Run(t.Context(), cfg, scan.Options{Budget: time.Minute, RedisMatch: e.prefix + ":*", Erased: st, Hasher: h,
		Progress: func(l string) { mu.Lock(); progress = append(progress, l); mu.Unlock() }})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]scan.SourceKind{}
	for _, s := range rep.Sources {
		kinds[s.Name] = s.Kind
		if s.Error != "" || s.Partial {
			t.Errorf("source %s: error %q, partial %v", s.Name, s.Error, s.Partial)
		}
	}
	if len(rep.Sources) != 6 {
		t.Errorf("%d sources, want 6 (PostgreSQL, MariaDB, Redis, 3 directories): %+v", len(rep.Sources), rep.Sources)
	}
	if !rep.ResidueChecked || rep.Erased != 2 {
		t.Errorf("residue checked %v against %d erased identifiers, want 2 (user_id, email)", rep.ResidueChecked, rep.Erased)
	}

	want := map[plant]bool{}
	for _, p := range e.plants() {
		want[p] = true
	}
	found := map[plant]scan.Finding{}
	var falsePositives []string
	for _, f := range rep.Findings {
		p := plant{f.Kind, kinds[f.Source], f.Location, f.Identifier}
		if want[p] {
			found[p] = f
		} else {
			falsePositives = append(falsePositives, fmt.Sprintf("%s: %s", p, f.Evidence()))
		}
	}
	var missed []string
	for p := range want {
		if _, ok := found[p]; !ok {
			missed = append(missed, p.String())
		}
	}
	sort.Strings(missed)
	precision := float64(len(found)) / float64(max(1, len(rep.Findings)))
	recall := float64(len(found)) / float64(len(want))
	var values int64
	for _, s := range rep.Sources {
		values += s.Values
	}
	t.Logf("planted estate: %d plants, %d findings, %d true: precision %.2f, recall %.2f (%d sources, %d values in %s)",
		len(want), len(rep.Findings), len(found), precision, recall, len(rep.Sources), values, elapsed.Round(time.Millisecond))
	for _, fp := range falsePositives {
		t.Errorf("false positive: %s", fp)
	}
	for _, m := range missed {
		t.Errorf("missed plant: %s", m)
	}
	if t.Failed() {
		var b bytes.Buffer
		scan.WriteText(&b, rep)
		t.Logf("report:\n%s\nprogress:\n%s", b.String(), strings.Join(progress, "\n"))
	}

	t.Run("ResidueNamesHashesNotValues", func(t *testing.T) {
		out, _ := json.Marshal(rep)
		var text bytes.Buffer
		scan.WriteText(&text, rep)
		for _, clear := range []string{"u1001@example.com", "u1001"} {
			if bytes.Contains(out, []byte(clear)) || strings.Contains(text.String(), clear) {
				t.Errorf("the report holds %q in clear", clear)
			}
		}
		f := found[plant{scan.Residue, scan.SourceSQL, e.schema + ".users.email", "email"}]
		if want := h.Identifier(erasure.Identifier{Type: "email", Value: "u1001@example.com"}); f.Hash != want || f.Values != 1 || f.Dataset != "accounts.users" {
			t.Errorf("users.email residue = %+v, want hash %s in 1 value, dataset accounts.users", f, want)
		}
	})

	t.Run("SuggestionsAreValidEntries", func(t *testing.T) {
		var extra []string
		for p, f := range found {
			switch {
			case p.kind != scan.Unregistered:
			case f.Suggestion == "":
				t.Errorf("%s: no suggestion", p)
			case strings.HasPrefix(f.Suggestion, "- name:") || strings.Contains(f.Suggestion, "\n- name:"):
				extra = append(extra, f.Suggestion)
			case p.loc == e.schema+".users.phone":
				if !strings.Contains(f.Suggestion, "add to dataset accounts.users") || !strings.Contains(f.Suggestion, "{ identifier: phone, column: phone }") {
					t.Errorf("users.phone suggestion:\n%s", f.Suggestion)
				}
			default:
				t.Errorf("%s: unexpected suggestion:\n%s", p, f.Suggestion)
			}
		}
		if len(extra) != 7 {
			t.Errorf("%d new dataset suggestions, want 7", len(extra))
		}
		sort.Strings(extra)
		ext, err := e.config(strings.Join(extra, "\n"))
		if err != nil {
			t.Fatalf("the suggested entries do not load: %v\n%s", err, strings.Join(extra, "\n"))
		}
		if got := len(ext.Datasets); got != len(cfg.Datasets)+7 {
			t.Errorf("%d datasets, want %d", got, len(cfg.Datasets)+7)
		}
		// Registered as suggested, the places are covered: only residue is left.
		rep, err := scan.Run(t.Context(), ext, scan.Options{Budget: time.Minute, RedisMatch: e.prefix + ":*", Erased: st, Hasher: h})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range rep.Findings {
			if f.Kind == scan.Unregistered && f.Location != e.schema+".users.phone" {
				t.Errorf("still unregistered once registered as suggested: %s %s (%s)", f.Source, f.Location, f.Identifier)
			}
		}
		if n := rep.Count(scan.Residue); n != 7 {
			t.Errorf("%d residue findings, want the same 7", n)
		}
	})

	t.Run("SampleBoundsWhatIsRead", func(t *testing.T) {
		rep, err := scan.Run(t.Context(), cfg, scan.Options{Sample: 3, RedisMatch: e.prefix + ":*"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range rep.Sources {
			limit := int64(3)
			if s.Kind == scan.SourceSQL {
				limit = 3 * int64(s.Units)
			}
			if s.Rows > limit || s.Rows == 0 {
				t.Errorf("%s: %d rows read with sample 3 (%d units)", s.Name, s.Rows, s.Units)
			}
		}
		if rep.ResidueChecked || rep.Count(scan.Residue) != 0 {
			t.Errorf("residue checked without a store")
		}
	})

	t.Run("BudgetStopsASource", func(t *testing.T) {
		rep, err := scan.Run(t.Context(), cfg, scan.Options{Budget: time.Nanosecond, RedisMatch: e.prefix + ":*"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range rep.Sources {
			if !s.Partial || s.Error != "" {
				t.Errorf("%s: partial %v, error %q; want partial without error", s.Name, s.Partial, s.Error)
			}
		}
	})

	t.Run("OneDataset", func(t *testing.T) {
		rep, err := scan.Run(t.Context(), cfg, scan.Options{Dataset: "shop.orders", Erased: st, Hasher: h})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Sources) != 1 || rep.Sources[0].Kind != scan.SourceSQL || !strings.HasPrefix(rep.Sources[0].Name, "mysql://") {
			t.Fatalf("sources = %+v", rep.Sources)
		}
		if rep.Count(scan.Unregistered) != 2 || rep.Count(scan.Residue) != 1 {
			t.Errorf("findings = %+v", rep.Findings)
		}
		for name, code := range map[string]string{"nope": erasure.ENOTFOUND} {
			if _, err := scan.Run(t.Context(), cfg, scan.Options{Dataset: name}); erasure.ErrorCode(err) != code {
				t.Errorf("dataset %s: %v, want %s", name, err, code)
			}
		}
	})
}
