package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/client"
	"erasure/mutator"
)

func init() {
	command("demo", "build a small estate on loopback and watch erasures go through it", runDemo)
}

// demoConfig is the registry of the demo estate. %s are filled with paths and addresses.
const demoConfig = `version: 1
server: { addr: "127.0.0.1:0", data_dir: %q, workers: 8 }
nats: { port: %d }
auth:
  tokens:
    - { name: demo, secret: "${ERASURE_DEMO_TOKEN}", roles: [submit, operate, read] }
identifiers: [user_id, email]
defaults: { deadline: 720h, max_attempts: 6, backoff: { initial: 300ms, max: 2s }, timeout: 5s, ack_timeout: 10s }
datasets:
  - name: accounts.users
    owner: accounts-team
    connector: sql
    sql: { driver: sqlite, dsn: %q, table: users, key: { column: id, identifier: user_id }, action: delete }
    provides: [ { identifier: email, column: email } ]
  - name: accounts.logins            # keyed by email: finds the user_id of an email-only request
    owner: accounts-team
    connector: sql
    sql: { driver: sqlite, dsn: %q, table: logins, key: { column: email, identifier: email }, action: delete }
    provides: [ { identifier: user_id, column: user_id } ]
  - name: accounts.newsletter        # keyed by email only: reached through the lookup above
    owner: marketing-team
    connector: sql
    sql: { driver: sqlite, dsn: %q, table: newsletter, key: { column: email, identifier: email }, action: delete }
  - name: profile-service
    owner: profile-team
    connector: http
    http:
      erase:  { method: DELETE, url: "%s/users/{user_id}" }
      verify: { method: GET,    url: "%s/users/{user_id}", gone: [404, 410] }
      timeout: 2s
  - name: analytics.events           # offline: JSON lines partitions, erased in one batched sweep
    owner: data-team
    connector: files
    files: { path: %q, format: jsonl, key: { field: user.id, identifier: user_id }, index: true }
    sweep: { every: 24h }
  - name: notifications              # async: a service consumes commands and acknowledges them
    owner: messaging-team
    connector: nats
    nats: { subject: erasure.notifications, identifiers: [user_id] }
`

// profileService is a real HTTP microservice holding profiles; user 3's DELETE fails twice
// with 503 before it succeeds.
type profileService struct {
	mu       sync.Mutex
	profiles map[string]bool
	failures map[string]int
}

func (p *profileService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/users/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		if !p.profiles[id] {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"id":%q}`, id)
	case http.MethodDelete:
		if p.failures[id] > 0 {
			p.failures[id]--
			w.Header().Set("Retry-After", "1")
			http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
		if !p.profiles[id] {
			http.NotFound(w, r)
			return
		}
		delete(p.profiles, id)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("demo", stderr)
	users := fs.Int("users", 1000, "`number` of users in the estate")
	keep := fs.Bool("keep", false, "keep the temporary directory")
	verbose := fs.Bool("v", false, "show the server's logs")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *users < 10 {
		return usageError("--users must be at least 10")
	}
	start := time.Now()
	dir, err := os.MkdirTemp("", "erasure-demo-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(stdout, "working in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	// The estate: an accounts database, a profile microservice, a notification service.
	dbPath := filepath.Join(dir, "accounts.db")
	if err := seedAccounts(ctx, dbPath, *users); err != nil {
		return err
	}
	profiles := &profileService{profiles: map[string]bool{}, failures: map[string]int{"3": 2}}
	for i := 1; i <= *users; i++ {
		profiles.profiles[fmt.Sprint(i)] = true
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	psrv := &http.Server{Handler: profiles}
	go psrv.Serve(pl)
	defer psrv.Close()
	profileURL := "http://" + pl.Addr().String()
	var notifications sync.Map // user_id → pending notifications
	for i := 1; i <= *users; i++ {
		notifications.Store(fmt.Sprint(i), 3)
	}

	natsPort, err := freePort()
	if err != nil {
		return err
	}
	token := randomToken()
	os.Setenv("ERASURE_DEMO_TOKEN", token)
	eventsDir := filepath.Join(dir, "events")
	if err := seedEvents(eventsDir, *users); err != nil {
		return err
	}
	yml := fmt.Sprintf(demoConfig, filepath.Join(dir, "data"), natsPort, dbPath, dbPath, dbPath, profileURL, profileURL, eventsDir)
	cfgPath := filepath.Join(dir, "erasure.yaml")
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		return err
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	logOut := io.Discard
	if *verbose {
		logOut = stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))
	slog.SetDefault(log) // connectors that log through the default logger follow -v too
	a, err := openApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close()
	if err := a.start(ctx, cfg.Server.Addr); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "estate: %d users in %s (tables users, logins, newsletter), profile service at %s,\n        4 JSON lines partitions of analytics events, notification service on NATS %s\n",
		*users, filepath.Base(dbPath), profileURL, a.nats.ClientURL())
	fmt.Fprintf(stdout, "erasure API at %s with %d datasets\n\n", a.URL(), len(cfg.Datasets))

	// The notification team's service: consumes erasure commands, acknowledges them.
	mctx, stopMutator := context.WithCancel(ctx)
	defer stopMutator()
	var acked atomic.Int64
	go mutator.Run(mctx, a.nats.JetStream(), "notifications", func(ctx context.Context, c mutator.Command) (int64, error) {
		var n int64
		for _, id := range c.Identifiers.Values("user_id") {
			if v, ok := notifications.LoadAndDelete(id); ok {
				n += int64(v.(int))
			}
		}
		acked.Add(1)
		return n, nil
	}, mutator.Stream(a.nats.Stream()))

	cl, err := client.New(a.URL(), token)
	if err != nil {
		return err
	}
	subs := []struct {
		label string
		ids   []erasure.Identifier
	}{
		{"user_id=1", []erasure.Identifier{{Type: "user_id", Value: "1"}}},
		{"user_id=2", []erasure.Identifier{{Type: "user_id", Value: "2"}}},
		{"user_id=3 (profile service fails twice)", []erasure.Identifier{{Type: "user_id", Value: "3"}}},
		{"email=user4@example.com (user_id found by lookup)", []erasure.Identifier{{Type: "email", Value: "user4@example.com"}}},
	}
	var ids []string
	for _, s := range subs {
		r, _, err := cl.Submit(ctx, erasure.Submission{Subject: s.ids, Reason: "user_request"}, "")
		if err != nil {
			return err
		}
		ids = append(ids, r.ID)
		fmt.Fprintf(stdout, "submitted %s  %s\n", r.ID, s.label)
	}
	fmt.Fprintln(stdout)

	// Progress, live, until every request ends.
	final := map[string]*erasure.Request{}
	deadline := time.Now().Add(2 * time.Minute)
	last := ""
	swept := false
	for len(final) < len(ids) {
		if time.Now().After(deadline) {
			return erasure.Errorf(erasure.EUNAVAILABLE, "demo: requests did not finish within 2 minutes")
		}
		var parts []string
		queued := 0
		for _, id := range ids {
			r, err := cl.Request(ctx, id)
			if err != nil {
				return err
			}
			done := 0
			for _, t := range r.Tasks {
				if t.State.Succeeded() {
					done++
				}
				if t.State == erasure.TaskQueued {
					queued++
				}
			}
			parts = append(parts, fmt.Sprintf("%s…%s %d/%d", id[:6], r.Status, done, len(r.Tasks)))
			if r.Status == erasure.RequestCompleted || r.Status == erasure.RequestFailed || r.Status == erasure.RequestCancelled {
				final[id] = r
			}
		}
		line := strings.Join(parts, "  ")
		if line != last {
			fmt.Fprintf(stdout, "[%5.1fs] %s\n", time.Since(start).Seconds(), line)
			last = line
		}
		// The offline dataset's tasks wait for a sweep (daily here); once all are queued the
		// demo runs one now, as an operator would with `erasure sweep run analytics.events`.
		if !swept && queued == len(ids) {
			sw, err := cl.RunSweep(ctx, "analytics.events")
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "[%5.1fs] sweep %s of analytics.events started for %d queued subjects\n", time.Since(start).Seconds(), sw.ID, sw.Tasks)
			swept = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(150 * time.Millisecond):
		}
	}
	return demoReport(ctx, stdout, a, cl, ids, final, dbPath, profiles, *users, start)
}

func demoReport(ctx context.Context, w io.Writer, a *app, cl *client.Client, ids []string, final map[string]*erasure.Request, dbPath string, profiles *profileService, users int, start time.Time) error {
	type row struct {
		method                     erasure.Method
		tasks, done, skipped, fail int
		attempts                   int
		removed                    int64
		verified                   int
	}
	rows := map[string]*row{}
	completed := 0
	for _, id := range ids {
		r := final[id]
		if r.Status == erasure.RequestCompleted {
			completed++
		}
		for _, t := range r.Tasks {
			if t.Kind != erasure.TaskErase {
				continue
			}
			x := rows[t.Dataset]
			if x == nil {
				x = &row{method: t.Method}
				rows[t.Dataset] = x
			}
			x.tasks++
			x.attempts += t.Attempts
			x.removed += t.Removed
			switch t.State {
			case erasure.TaskDone:
				x.done++
			case erasure.TaskSkipped:
				x.skipped++
			case erasure.TaskFailed:
				x.fail++
			}
			if t.VerifiedAt != nil {
				x.verified++
			}
		}
	}
	names := make([]string, 0, len(rows))
	for n := range rows {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "\nper dataset:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  DATASET\tMETHOD\tDONE\tSKIPPED\tFAILED\tATTEMPTS\tREMOVED\tVERIFIED")
	for _, n := range names {
		x := rows[n]
		fmt.Fprintf(tw, "  %s\t%s\t%d/%d\t%d\t%d\t%d\t%d\t%d\n", n, x.method, x.done, x.tasks, x.skipped, x.fail, x.attempts, x.removed, x.verified)
	}
	tw.Flush()

	// What stayed: every other subject's data is intact.
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	var nUsers, nLetters, nLogins int
	db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&nUsers)
	db.QueryRowContext(ctx, `SELECT count(*) FROM newsletter`).Scan(&nLetters)
	db.QueryRowContext(ctx, `SELECT count(*) FROM logins`).Scan(&nLogins)
	profiles.mu.Lock()
	nProfiles := len(profiles.profiles)
	profiles.mu.Unlock()
	events, err := countEventLines(filepath.Join(filepath.Dir(dbPath), "events"))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nleft in the estate: %d of %d users, %d of %d logins, %d of %d newsletter rows, %d of %d profiles, %d of %d events\n",
		nUsers, users, nLogins, 2*users, nLetters, 2*users, nProfiles, users, events, 3*users)

	hist, err := cl.SweepStatus(ctx, "analytics.events", 0)
	if err != nil {
		return err
	}
	for _, sw := range hist.Sweeps {
		fmt.Fprintf(w, "sweep %s of analytics.events: %s, %d partitions, %d rows scanned, %d removed\n", sw.ID, sw.State, sw.Partitions, sw.Scanned, sw.Removed)
	}
	var v audit.Verifier
	err = cl.AuditEach(ctx, erasure.AuditFilter{}, func(ev erasure.AuditEvent) error { return v.Add(&ev) })
	if err != nil {
		return fmt.Errorf("audit trail: %w", err)
	}
	seq, head := v.Head()
	fmt.Fprintf(w, "audit trail verified: %d events, head %d %s…\n", v.Count, seq, head[:16])
	fmt.Fprintf(w, "\ndemo: %d of %d requests completed across %d datasets in %.1fs\n", completed, len(ids), len(rows), time.Since(start).Seconds())
	if completed != len(ids) {
		return erasure.Errorf(erasure.EINTERNAL, "%d requests did not complete", len(ids)-completed)
	}
	return nil
}

func seedAccounts(ctx context.Context, path string, users int) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT NOT NULL);
		CREATE TABLE newsletter (email TEXT NOT NULL, topic TEXT NOT NULL);
		CREATE TABLE logins (email TEXT NOT NULL, user_id INTEGER NOT NULL, at TEXT NOT NULL);`); err != nil {
		return err
	}
	for i := 1; i <= users; i++ {
		email := fmt.Sprintf("user%d@example.com", i)
		if _, err := tx.ExecContext(ctx, `INSERT INTO users VALUES (?, ?, ?)`, i, email, fmt.Sprintf("User %d", i)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO newsletter VALUES (?, 'weekly'), (?, 'offers')`, email, email); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO logins VALUES (?, ?, '2026-01-01'), (?, ?, '2026-02-01')`, email, i, email, i); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// seedEvents writes 4 partitions of analytics events, three per user, each user in one of them.
func seedEvents(dir string, users int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for p := 0; p < 4; p++ {
		var b strings.Builder
		for u := 1; u <= users; u++ {
			if u%4 == p {
				for k := 0; k < 3; k++ {
					fmt.Fprintf(&b, "{\"user\":{\"id\":%d},\"event\":\"page_view\",\"n\":%d}\n", u, k)
				}
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("day-%d.jsonl", p)), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// countEventLines counts the lines of the partitions in dir (not its hidden state directory).
func countEventLines(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return 0, err
		}
		n += strings.Count(string(b), "\n")
	}
	return n, nil
}
