// Command dashboard measures the render time of every dashboard page with a large store: it
// seeds an embedded SQLite store with N requests (default 1,000,000) spread over a year, three
// tasks each, in the mix a long-running deployment has (most completed, some cancelled, some
// failed, the newest still open, some overdue), then serves the dashboard in-process and
// fetches each page many times as a signed-in operator, printing p50 and p99 per page.
//
// Baselines measured in the same run: GET /healthz through the same server (HTTP and
// middleware alone), the API's JSON listing of the same first page (GET /v1/requests?limit=50),
// and the raw SQL of that page on the read pool.
//
// Seeding uses the store's batch insert (CreateRequests, with its audit blocks) and then sets
// the outcomes with set-based SQL, so the trail holds the submissions only. The seeded file is
// kept with -db and reused when it exists:
//
//	go run ./bench/dashboard -requests 1000000 -db /tmp/dashboard-1m.db -runs 200
package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"erasure"
	"erasure/api"
	"erasure/audit"
	"erasure/pipeline"
	"erasure/store/sqlite"
	"erasure/store/sqlrecords"
	"erasure/web"
)

var datasets = []*erasure.Dataset{
	{Name: "accounts.users", Owner: "accounts-team", Connector: "sql", Method: erasure.MethodRealtime, Keys: []string{"user_id"}},
	{Name: "notifications", Owner: "messaging-team", Connector: "nats", Method: erasure.MethodAsync, Keys: []string{"user_id"}},
	{Name: "warehouse.events", Owner: "data-team", Connector: "files", Method: erasure.MethodOffline, Keys: []string{"user_id"}},
}

const token = "bench-operator-secret-0123456789"

func main() {
	n := flag.Int("requests", 1_000_000, "requests in the store")
	dbPath := flag.String("db", "", "the store's file: reused when it exists, kept afterwards (default: a temporary file, removed)")
	runs := flag.Int("runs", 200, "fetches of each page (after 5 to warm up)")
	batch := flag.Int("batch", 2000, "requests per CreateRequests batch while seeding")
	flag.Parse()
	ctx := context.Background()

	path := *dbPath
	if path == "" {
		dir, err := os.MkdirTemp("", "erasure-bench-dashboard-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "erasure.db")
	}
	hasher, err := audit.NewHasher([]byte("bench-dashboard-audit-key-0123456789"))
	if err != nil {
		log.Fatal(err)
	}
	db, err := sqlite.Open(ctx, path, sqlite.Options{Hasher: hasher, Chain: hasher.Chain(), Synchronous: "NORMAL"})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	var have int
	if err := db.ReadSQL().QueryRowContext(ctx, `SELECT count(*) FROM requests`).Scan(&have); err != nil {
		log.Fatal(err)
	}
	if have == 0 {
		if err := seed(ctx, db, *n, *batch); err != nil {
			log.Fatal(err)
		}
	} else if have != *n {
		log.Fatalf("%s holds %d requests, not %d: remove it or pass -requests %d", path, have, *n, have)
	} else {
		fmt.Printf("reusing %s (%d requests)\n", path, have)
	}
	fi, _ := os.Stat(path)
	fmt.Printf("store: %d requests, %d MiB\n", *n, fi.Size()>>20)

	svc := &pipeline.Service{Store: db, Hasher: hasher, Chain: hasher.Chain(), Registered: datasets, Identifiers: []string{"user_id", "email"}, DefaultDeadline: 720 * time.Hour}
	apiSrv := api.New(api.Config{Service: svc, Tokens: []api.Token{{Name: "operator", Secret: token, Roles: []string{"operate"}}}})
	recs, err := sqlrecords.Open(ctx, db.SQL(), sqlrecords.Options{AppendAudit: db.AppendAudit, ReadDB: db.ReadSQL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	cert := &pipeline.Certifier{Store: db, Key: key}
	ui, err := web.New(web.Config{Service: svc, Reports: db, Trail: db, Chain: hasher.Chain(), Hasher: svc, Auth: apiSrv,
		SessionKey: []byte("bench-dashboard-session-key-0123"), Datasets: datasets, Identifiers: []string{"user_id", "email"},
		Certifier: cert, Records: recs})
	if err != nil {
		log.Fatal(err)
	}
	apiSrv.Mount("/ui/", ui)
	srv := httptest.NewServer(apiSrv.Handler())
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(srv.URL+"/ui/login", url.Values{"token": {token}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		log.Fatalf("sign-in: %v %v", resp, err)
	}
	resp.Body.Close()

	// Requests to look at: a completed one (detail, certificate), the middle of the listing
	// (a cursor deep in the table), one subject's requests.
	var done, middle string
	must(db.ReadSQL().QueryRowContext(ctx, `SELECT id FROM requests WHERE status = 'completed' ORDER BY id DESC LIMIT 1 OFFSET 1000`).Scan(&done))
	must(db.ReadSQL().QueryRowContext(ctx, `SELECT id FROM requests ORDER BY id LIMIT 1 OFFSET ?`, *n/2).Scan(&middle))
	subject, err := svc.SubjectHash(erasure.Identifier{Type: "email", Value: fmt.Sprintf("u%d@example.com", *n/3)})
	must(err)
	if p, err := svc.Requests(ctx, erasure.RequestFilter{SubjectHash: subject}); err != nil || len(p.Requests) != 1 {
		log.Fatalf("the subject searched has %d requests (%v), want 1", len(p.Requests), err)
	}

	pages := []struct{ name, path string }{
		{"overview", "/ui/"},
		{"requests", "/ui/requests"},
		{"requests, page in the middle", "/ui/requests?cursor=" + middle},
		{"requests ?status=failed", "/ui/requests?status=failed"},
		{"requests ?overdue=1", "/ui/requests?overdue=1"},
		{"requests ?dataset=notifications", "/ui/requests?dataset=notifications"},
		{"requests of a subject (search)", "/ui/requests?subject=" + url.QueryEscape(subject)},
		{"request detail", "/ui/requests/" + done},
		{"certificate (signed on each view)", "/ui/requests/" + done + "/certificate"},
		{"datasets", "/ui/datasets"},
		{"sweeps", "/ui/sweeps"},
		{"records", "/ui/records"},
		{"audit (trail verified first)", "/ui/audit"},
		{"audit", "/ui/audit"},
	}
	fmt.Printf("\n%-36s %10s %10s %10s %9s\n", "page", "p50", "p99", "max", "bytes")
	line := func(name string, d []time.Duration, bytes int) {
		slices.Sort(d)
		fmt.Printf("%-36s %10s %10s %10s %9d\n", name, round(d[len(d)/2]), round(d[len(d)*99/100]), round(d[len(d)-1]), bytes)
	}
	var body []byte
	fetch := func(path string) (time.Duration, int) {
		start := time.Now()
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			log.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		return time.Since(start), len(body)
	}
	for i, p := range pages {
		if i == len(pages)-2 {
			// The audit page verifies the trail a little at each view: the first views of a long
			// trail are slower, until it is verified to its head.
			d := []time.Duration{}
			var size int
			start := time.Now()
			for k := 0; k < 1000; k++ {
				t, sz := fetch(p.path)
				d, size = append(d, t), sz
				if strings.Contains(string(body), "the whole trail, to its head") {
					break
				}
			}
			line(p.name, d, size)
			fmt.Printf("%-36s %d views, %s in all\n", "", len(d), round(time.Since(start)))
			continue
		}
		for k := 0; k < 5; k++ {
			fetch(p.path)
		}
		d := make([]time.Duration, *runs)
		var size int
		for k := range d {
			d[k], size = fetch(p.path)
		}
		line(p.name, d, size)
	}

	fmt.Printf("\nbaselines (same run)\n")
	for _, b := range []struct{ name, path string }{{"GET /healthz", "/healthz"}} {
		d := make([]time.Duration, *runs)
		var size int
		for k := range d {
			d[k], size = fetch(b.path)
		}
		line(b.name, d, size)
	}
	{
		d := make([]time.Duration, *runs)
		var size int
		for k := range d {
			start := time.Now()
			req, _ := http.NewRequest("GET", srv.URL+"/v1/requests?limit=50", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				log.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			d[k], size = time.Since(start), len(b)
		}
		line("API GET /v1/requests?limit=50", d, size)
	}
	{
		d := make([]time.Duration, *runs)
		for k := range d {
			start := time.Now()
			rows, err := db.ReadSQL().QueryContext(ctx, `SELECT id, status, reason, deadline, submitted_by, cancelled, created_at, updated_at, finished_at FROM requests ORDER BY id DESC LIMIT 51`)
			must(err)
			for rows.Next() {
			}
			rows.Close()
			d[k] = time.Since(start)
		}
		line("raw SQL of the first page", d, 0)
	}
}

func round(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// seed writes n requests through CreateRequests in batches, their creation spread over the
// last year (the store's clock is moved along), then sets outcomes with set-based SQL.
func seed(ctx context.Context, db *sqlite.DB, n, batch int) error {
	now := time.Now().UTC()
	start := now.Add(-365 * 24 * time.Hour)
	step := 365 * 24 * time.Hour / time.Duration(n)
	var clock time.Time
	db.Now = func() time.Time { return clock }
	defer func() { db.Now = time.Now }()
	began := time.Now()
	specs := make([]erasure.TaskSpec, len(datasets))
	for i, d := range datasets {
		specs[i] = erasure.TaskSpec{Dataset: d.Name, Kind: erasure.TaskErase, Method: d.Method, Keys: d.Keys}
	}
	for i := 0; i < n; i += batch {
		clock = start.Add(time.Duration(i) * step)
		nrs := make([]erasure.NewRequest, 0, batch)
		for j := i; j < min(n, i+batch); j++ {
			created := start.Add(time.Duration(j) * step)
			nrs = append(nrs, erasure.NewRequest{
				ID:      pipeline.NewRequestID(created),
				Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: fmt.Sprint(j)}, erasure.Identifier{Type: "email", Value: fmt.Sprintf("u%d@example.com", j)}),
				Reason:  "user_request", Deadline: created.Add(30 * 24 * time.Hour), SubmittedBy: "intake", Tasks: specs,
			})
		}
		res, err := db.CreateRequests(ctx, nrs)
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Err != nil {
				return r.Err
			}
		}
		if (i/batch)%50 == 0 {
			fmt.Fprintf(os.Stderr, "\rseeding: %d of %d requests (%.0f/s)", i+len(nrs), n, float64(i+len(nrs))/time.Since(began).Seconds())
		}
	}
	fmt.Fprintf(os.Stderr, "\rseeding: %d requests in %s; setting outcomes\n", n, round(time.Since(began)))
	// Outcomes by rowid (insertion order, so spread over the year): the newest 0.3% stay open
	// (pending, running, some overdue); of the rest, 1% failed on accounts.users, 1% cancelled,
	// the others completed within 48 hours.
	w := db.SQL()
	open := n - n*3/1000
	stmts := []string{
		fmt.Sprintf(`UPDATE requests SET
			status = CASE WHEN rowid %% 100 = 97 THEN 'failed' WHEN rowid %% 100 = 98 THEN 'cancelled' ELSE 'completed' END,
			cancelled = CASE WHEN rowid %% 100 = 98 THEN 1 ELSE 0 END,
			updated_at = created_at + (rowid %% 48 + 1) * 3600000,
			finished_at = CASE WHEN rowid %% 100 = 97 THEN NULL ELSE created_at + (rowid %% 48 + 1) * 3600000 END
			WHERE rowid <= %d`, open),
		fmt.Sprintf(`UPDATE requests SET status = 'running', updated_at = created_at + 60000 WHERE rowid > %d AND rowid %% 2 = 0`, open),
		`UPDATE tasks SET
			state = CASE (SELECT status FROM requests r WHERE r.id = tasks.request_id)
				WHEN 'completed' THEN 'done'
				WHEN 'cancelled' THEN CASE WHEN dataset = 'accounts.users' THEN 'done' ELSE 'cancelled' END
				WHEN 'failed' THEN CASE WHEN dataset = 'accounts.users' THEN 'failed' ELSE 'done' END
				WHEN 'running' THEN CASE WHEN dataset = 'accounts.users' THEN 'done' WHEN dataset = 'notifications' THEN 'dispatched' ELSE 'queued' END
				ELSE state END,
			attempts = 1, removed = 1,
			finished_at = (SELECT coalesce(finished_at, updated_at) FROM requests r WHERE r.id = tasks.request_id),
			verified_at = (SELECT finished_at FROM requests r WHERE r.id = tasks.request_id)`,
		`UPDATE tasks SET finished_at = NULL, verified_at = NULL, attempts = 0, removed = 0 WHERE state IN ('pending', 'blocked', 'dispatched', 'queued')`,
		`UPDATE tasks SET last_error = 'accounts database refused the delete: permission denied for table users', removed = 0, verified_at = NULL WHERE state = 'failed'`,
		`UPDATE identifiers SET value = NULL WHERE request_id IN (SELECT id FROM requests WHERE status IN ('completed', 'cancelled'))`,
	}
	for _, q := range stmts {
		t := time.Now()
		if _, err := w.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", strings.Fields(q)[0:3], err)
		}
		fmt.Fprintf(os.Stderr, "  %s… %s\n", strings.Join(strings.Fields(q)[:4], " "), round(time.Since(t)))
	}
	// A year of daily sweeps of the offline dataset.
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for d := 0; d < 365; d++ {
		at := start.Add(time.Duration(d) * 24 * time.Hour)
		if _, err := tx.ExecContext(ctx, `INSERT INTO sweeps (id, dataset, state, mode, actor, tasks, started, finished, partitions, rows_scanned, rows_removed, bytes)
			VALUES (?, 'warehouse.events', 'committed', 'internal', 'scheduler', ?, ?, ?, 64, ?, ?, ?)`,
			pipeline.NewSweepID(at), n/365, at.UnixMilli(), at.Add(20*time.Minute).UnixMilli(), 50_000_000, n/365, 3<<30); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = w.ExecContext(ctx, `ANALYZE`) // the statistics a store that has run for a while has
	fmt.Fprintf(os.Stderr, "seeded in %s\n", round(time.Since(began)))
	return err
}
