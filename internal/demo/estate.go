package demo

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite" // the accounts database

	"erasure/mutator"
)

// Estate is the demo's microservice estate on loopback: an accounts database (SQLite, tables
// users, logins and newsletter), a profile service over HTTP, a notification service that
// consumes erasure commands from NATS, and a snapshot of analytics events (JSON lines
// partitions). Every user 1..Users has data in each.
type Estate struct {
	Dir   string
	Users int
	// AccountsDB is the path of the accounts database, EventsDir the snapshot's directory.
	AccountsDB string
	EventsDir  string
	// ProfileURL is the base URL of the profile service.
	ProfileURL string

	profiles      *profileService
	profileServer *http.Server
	notifications sync.Map // user_id → pending notifications
	acked         atomic.Int64
}

// NewEstate seeds the estate's data under dir for users users and starts its profile service.
// Close stops it.
func NewEstate(ctx context.Context, dir string, users int) (*Estate, error) {
	e := &Estate{Dir: dir, Users: users, AccountsDB: filepath.Join(dir, "accounts.db"), EventsDir: filepath.Join(dir, "events")}
	if err := seedAccounts(ctx, e.AccountsDB, users); err != nil {
		return nil, err
	}
	if err := seedEvents(e.EventsDir, users); err != nil {
		return nil, err
	}
	e.profiles = &profileService{profiles: map[string]bool{}, failures: map[string]int{"3": 2}}
	for i := 1; i <= users; i++ {
		e.profiles.profiles[fmt.Sprint(i)] = true
		e.notifications.Store(fmt.Sprint(i), 3)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.profileServer = &http.Server{Handler: e.profiles}
	go e.profileServer.Serve(ln)
	e.ProfileURL = "http://" + ln.Addr().String()
	return e, nil
}

// Close stops the profile service.
func (e *Estate) Close() error { return e.profileServer.Close() }

// Notifications runs the notification team's service until ctx ends: it consumes the erasure
// commands of the async dataset "notifications" from stream, erases the user's pending
// notifications and acknowledges each command (package mutator).
func (e *Estate) Notifications(ctx context.Context, js jetstream.JetStream, stream string) error {
	return mutator.Run(ctx, js, "notifications", func(ctx context.Context, c mutator.Command) (int64, error) {
		var n int64
		for _, id := range c.Identifiers.Values("user_id") {
			if v, ok := e.notifications.LoadAndDelete(id); ok {
				n += int64(v.(int))
			}
		}
		e.acked.Add(1)
		return n, nil
	}, mutator.Stream(stream))
}

// Left is what stays of the estate's data.
type Left struct {
	Users, Logins, Newsletter, Profiles, Events int
}

// Left counts what stays in each system.
func (e *Estate) Left(ctx context.Context) (Left, error) {
	var l Left
	db, err := sql.Open("sqlite", e.AccountsDB)
	if err != nil {
		return l, err
	}
	defer db.Close()
	for _, q := range []struct {
		table string
		n     *int
	}{{"users", &l.Users}, {"logins", &l.Logins}, {"newsletter", &l.Newsletter}} {
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+q.table).Scan(q.n); err != nil {
			return l, err
		}
	}
	e.profiles.mu.Lock()
	l.Profiles = len(e.profiles.profiles)
	e.profiles.mu.Unlock()
	l.Events, err = countEventLines(e.EventsDir)
	return l, err
}

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
