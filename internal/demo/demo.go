// Package demo is `erasure demo`: it builds a small estate on loopback (Estate: an accounts
// database, a profile service that fails twice before it succeeds, a notification service on
// NATS, a snapshot of analytics events), runs an erasure server over it, submits four
// erasures (one by e-mail only, found through lookups), shows their progress live and ends
// with a report per dataset, what stays in the estate and a verified audit trail.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"erasure"
	"erasure/client"
	_ "erasure/connector/files" // analytics.events
	_ "erasure/connector/http"  // profile-service
	_ "erasure/connector/nats"  // notifications
	_ "erasure/connector/sql"   // accounts.*
	"erasure/internal/words"
	"erasure/registry"
	"erasure/server"
)

// Options are the demo's settings.
type Options struct {
	// Users is how many users the estate holds (at least 10).
	Users int
	// Keep keeps the estate's directory (a temporary one) and says where it is.
	Keep bool
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// configTemplate is the registry of the demo estate. %s are filled with paths and addresses.
const configTemplate = `version: 1
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

// Config returns the registry of the estate for a server keeping its data in dataDir, with an
// embedded NATS on natsPort.
func (e *Estate) Config(dataDir string, natsPort int) string {
	db := e.AccountsDB
	return fmt.Sprintf(configTemplate, dataDir, natsPort, db, db, db, e.ProfileURL, e.ProfileURL, e.EventsDir)
}

// Run builds the estate, runs a server over it, erases four subjects and writes what happens
// to w, ending with one line that says how many requests completed. It returns an error when
// one did not.
func Run(ctx context.Context, o Options, w io.Writer) error {
	if o.Users < 10 {
		return erasure.Errorf(erasure.EINVALID, "the demo needs at least 10 users")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	dir, err := os.MkdirTemp("", "erasure-demo-")
	if err != nil {
		return err
	}
	if o.Keep {
		fmt.Fprintf(w, "working in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	estate, err := NewEstate(ctx, dir, o.Users)
	if err != nil {
		return err
	}
	defer estate.Close()
	natsPort, err := freePort()
	if err != nil {
		return err
	}
	token := randomToken()
	yml := estate.Config(filepath.Join(dir, "data"), natsPort)
	cfgPath := filepath.Join(dir, "erasure.yaml")
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		return err
	}
	cfg, err := registry.Parse(cfgPath, []byte(yml), func(k string) (string, bool) {
		if k == "ERASURE_DEMO_TOKEN" {
			return token, true
		}
		return os.LookupEnv(k)
	})
	if err != nil {
		return err
	}
	srv, err := server.Open(ctx, cfg, log) // closes the connectors when it fails
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := srv.Start(ctx, cfg.Server.Addr); err != nil {
		return err
	}
	fmt.Fprintf(w, "estate: %d users in %s (tables users, logins, newsletter), profile service at %s,\n        4 JSON lines partitions of analytics events, notification service on NATS %s\n",
		o.Users, filepath.Base(estate.AccountsDB), estate.ProfileURL, srv.NATS.ClientURL())
	fmt.Fprintf(w, "erasure API at %s with %s\n\n", srv.URL(), words.Count(len(cfg.Datasets), "dataset"))

	mctx, stopNotifications := context.WithCancel(ctx)
	defer stopNotifications()
	go estate.Notifications(mctx, srv.NATS.JetStream(), srv.NATS.Stream())

	cl, err := client.New(srv.URL(), token)
	if err != nil {
		return err
	}
	ids, final, err := erase(ctx, w, cl, start)
	if err != nil {
		return err
	}
	return report(ctx, w, estate, cl, ids, final, start)
}

// erase submits the four erasures and shows their progress until each has ended; the offline
// dataset is swept as soon as every request waits for it.
func erase(ctx context.Context, w io.Writer, cl *client.Client, start time.Time) ([]string, map[string]*erasure.Request, error) {
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
			return nil, nil, err
		}
		ids = append(ids, r.ID)
		fmt.Fprintf(w, "submitted %s  %s\n", r.ID, s.label)
	}
	fmt.Fprintln(w)

	short := words.Prefixes(ids, 8) // ids of one instant share their first characters
	final := map[string]*erasure.Request{}
	deadline := time.Now().Add(2 * time.Minute)
	last := ""
	swept := false
	for len(final) < len(ids) {
		if time.Now().After(deadline) {
			return nil, nil, erasure.Errorf(erasure.EUNAVAILABLE, "demo: requests did not finish within 2 minutes")
		}
		var parts []string
		queued := 0
		for _, id := range ids {
			r, err := cl.Request(ctx, id)
			if err != nil {
				return nil, nil, err
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
			parts = append(parts, fmt.Sprintf("%s… %s %d/%d", short[id], r.Status, done, len(r.Tasks)))
			if r.Status == erasure.RequestCompleted || r.Status == erasure.RequestFailed || r.Status == erasure.RequestCancelled {
				final[id] = r
			}
		}
		line := strings.Join(parts, "  ")
		if line != last {
			fmt.Fprintf(w, "[%5.1fs] %s\n", time.Since(start).Seconds(), line)
			last = line
		}
		// The offline dataset's tasks wait for a sweep (daily here); once all are queued the
		// demo runs one now, as an operator would with `erasure sweep run analytics.events`.
		if !swept && queued == len(ids) {
			sw, err := cl.RunSweep(ctx, "analytics.events")
			if err != nil {
				return nil, nil, err
			}
			fmt.Fprintf(w, "[%5.1fs] sweep %s of analytics.events started for %s\n", time.Since(start).Seconds(), sw.ID, words.Count(sw.Tasks, "queued subject"))
			swept = true
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(150 * time.Millisecond):
		}
	}
	return ids, final, nil
}

// report writes the outcome per dataset, what stays in the estate, the sweep, the verified
// audit trail, and the final line.
func report(ctx context.Context, w io.Writer, estate *Estate, cl *client.Client, ids []string, final map[string]*erasure.Request, start time.Time) error {
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
	left, err := estate.Left(ctx)
	if err != nil {
		return err
	}
	users := estate.Users
	fmt.Fprintf(w, "\nleft in the estate: %d of %d users, %d of %d logins, %d of %d newsletter rows, %d of %d profiles, %d of %d events\n",
		left.Users, users, left.Logins, 2*users, left.Newsletter, 2*users, left.Profiles, users, left.Events, 3*users)

	hist, err := cl.SweepStatus(ctx, "analytics.events", 0)
	if err != nil {
		return err
	}
	for _, sw := range hist.Sweeps {
		fmt.Fprintf(w, "sweep %s of analytics.events: %s, %s, %s scanned, %d removed\n", sw.ID, sw.State, words.Count(sw.Partitions, "partition"), words.Count(sw.Scanned, "row"), sw.Removed)
	}
	rep, err := cl.VerifyAudit(ctx)
	if err != nil {
		return fmt.Errorf("audit trail: %w", err)
	}
	if !rep.OK {
		return fmt.Errorf("audit trail BROKEN: %s", rep.Error)
	}
	fmt.Fprintf(w, "audit trail verified: %s in %s, head %s…\n", words.Count(rep.Head.Events, "event"), words.Count(rep.Head.Block, "block"), rep.Head.Hash[:16])
	fmt.Fprintf(w, "\ndemo: %d of %s completed across %s in %.1fs\n", completed, words.Count(len(ids), "request"), words.Count(len(rows), "dataset"), time.Since(start).Seconds())
	if completed != len(ids) {
		return erasure.Errorf(erasure.EINTERNAL, "%s did not complete", words.Count(len(ids)-completed, "request"))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// randomToken returns the secret of the demo's API token.
func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}
