package server_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"erasure"
	"erasure/client"
	_ "erasure/connector/sql"
	"erasure/internal/testenv"
	"erasure/registry"
	"erasure/server"
)

// hiding is a memory dataset with a hide action: it remembers whom it hid.
type hiding struct {
	memory
	hmu    sync.Mutex
	hidden map[string]bool
}

func (h *hiding) Hides() bool { return true }

func (h *hiding) Hide(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	for _, id := range s.Values("user_id") {
		h.hidden[id] = true
	}
	return erasure.Outcome{Removed: int64(len(s.Values("user_id")))}, nil
}

func (h *hiding) isHidden(id string) bool {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	return h.hidden[id]
}

type hidingDriver struct{}

func (hidingDriver) Method() erasure.Method { return erasure.MethodRealtime }

func (hidingDriver) Build(b *registry.Build) erasure.Connector {
	b.Dataset.Keys = []string{"user_id"}
	h := &hiding{hidden: map[string]bool{}}
	h.users = map[string]bool{}
	for i := 1; i <= 9; i++ {
		h.users[fmt.Sprint(i)] = true
	}
	return h
}

func init() { registry.Register("hiding", hidingDriver{}) }

func (m *memory) has(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.users[id]
}

func (m *memory) restore(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[id] = true
}

const (
	intakeToken = "intake-secret-0123456789"
	otherToken  = "other-intake-secret-0123456789"
	checkToken  = "check-secret-0123456789"
)

// startWith opens and starts a server over the datasets (YAML list items) with defaults, and
// returns it with clients for the operator, two intake channels and an ingest pipeline.
func startWith(t *testing.T, defaults, datasets string, env map[string]string) (s *server.Server, op, intake, other, checker *client.Client) {
	t.Helper()
	dir := t.TempDir()
	yml := fmt.Sprintf(`version: 1
server: { data_dir: %q }
auth:
  tokens:
    - { name: operator, secret: "${TOKEN}", roles: [submit, operate] }
    - { name: intake, secret: "${INTAKE}", roles: [submit, read] }
    - { name: other-intake, secret: "${OTHER}", roles: [submit, read] }
    - { name: ingest, secret: "${CHECK}", roles: [check] }
identifiers: [user_id, email]
defaults: { backoff: { initial: 10ms, max: 100ms }%s }
datasets:
%s`, filepath.Join(dir, "data"), defaults, datasets)
	vars := map[string]string{"TOKEN": token, "INTAKE": intakeToken, "OTHER": otherToken, "CHECK": checkToken}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := registry.Parse(filepath.Join(dir, "erasure.yaml"), []byte(yml), func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	s, err = server.Open(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Start(t.Context(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	mk := func(secret string) *client.Client {
		c, err := client.New(s.URL(), secret)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return s, mk(token), mk(intakeToken), mk(otherToken), mk(checkToken)
}

func user(id string) erasure.Subject {
	return erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: id})
}

func submitVia(t *testing.T, c *client.Client, sub erasure.Submission) *erasure.Request {
	t.Helper()
	if sub.Reason == "" {
		sub.Reason = "user_request"
	}
	r, _, err := c.Submit(t.Context(), sub, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func taskStates(r *erasure.Request) string {
	var out []string
	for _, tk := range r.Tasks {
		out = append(out, tk.Dataset+"/"+string(tk.Kind)+"="+string(tk.State))
	}
	return strings.Join(out, " ")
}

func TestPolicies_HoldWaitsWhileOthersComplete(t *testing.T) {
	s, op, intake, _, _ := startWith(t, "", `  - { name: profiles, owner: team, connector: memory, memory: {} }
  - { name: billing, owner: finance, connector: memory, memory: {} }
`, nil)
	h, err := op.AddHold(t.Context(), erasure.Identifier{Type: "user_id", Value: "3"}, []string{"billing"}, false, "tax audit 2026-04")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Identifier) != len("user_id:")+32 || !strings.HasPrefix(h.Identifier, "user_id:") || !erasure.ValidHoldID(h.ID) {
		t.Fatalf("hold %+v", h)
	}
	r := submitVia(t, intake, erasure.Submission{Subject: user("3")})
	waitStatus(t, s, r.ID, erasure.RequestHeld)
	got, err := intake.Request(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if taskStates(got) != "profiles/erase=done billing/erase=held" || len(got.Tasks[1].HeldBy) != 1 || got.Tasks[1].HeldBy[0] != h.ID {
		t.Fatalf("held request: %s, held by %v", taskStates(got), got.Tasks[1].HeldBy)
	}
	profiles := s.Config.Dataset("profiles").Conn.(*memory)
	billing := s.Config.Dataset("billing").Conn.(*memory)
	if profiles.has("3") || !billing.has("3") {
		t.Fatalf("profiles has 3: %v, billing has 3: %v; want erased from profiles only", profiles.has("3"), billing.has("3"))
	}
	// Other subjects are not held.
	waitStatus(t, s, submitVia(t, intake, erasure.Submission{Subject: user("4")}).ID, erasure.RequestCompleted)
	if _, err := intake.ReleaseHold(t.Context(), h.ID); erasure.ErrorCode(err) != erasure.EFORBIDDEN {
		t.Fatalf("release by an intake token: %v", err)
	}
	if hs, err := intake.Holds(t.Context(), false); err != nil || len(hs) != 1 {
		t.Fatalf("holds %+v, %v", hs, err)
	}
	if _, err := op.ReleaseHold(t.Context(), h.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, r.ID, erasure.RequestCompleted)
	if billing.has("3") {
		t.Fatal("billing still holds 3 after the release")
	}
	if _, err := op.ReleaseHold(t.Context(), h.ID); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("release twice: %v", err)
	}
	if rep, err := op.VerifyAudit(t.Context()); err != nil || !rep.OK {
		t.Fatalf("audit %+v, %v", rep, err)
	}
	t.Run("BadHoldsChangeNothing", func(t *testing.T) {
		for _, tc := range []struct {
			id       erasure.Identifier
			datasets []string
			reason   string
		}{
			{erasure.Identifier{Type: "phone", Value: "1"}, []string{"billing"}, "x"},
			{erasure.Identifier{Type: "user_id", Value: "1"}, []string{"nowhere"}, "x"},
			{erasure.Identifier{Type: "user_id", Value: "1"}, []string{"billing"}, ""},
			{erasure.Identifier{Type: "user_id", Value: "1"}, nil, "x"},
		} {
			if _, err := op.AddHold(t.Context(), tc.id, tc.datasets, false, tc.reason); erasure.ErrorCode(err) != erasure.EINVALID {
				t.Errorf("%+v: err %v", tc, err)
			}
		}
		if hs, _ := op.Holds(t.Context(), true); len(hs) != 1 {
			t.Fatalf("holds after bad input: %+v", hs)
		}
	})
}

func TestPolicies_GraceWindow(t *testing.T) {
	s, op, intake, other, _ := startWith(t, ", grace: 72h", `  - { name: profiles, owner: team, connector: hiding, hiding: {} }
  - { name: billing, owner: finance, connector: memory, memory: {} }
`, nil)
	profiles := s.Config.Dataset("profiles").Conn.(*hiding)
	billing := s.Config.Dataset("billing").Conn.(*memory)
	r := submitVia(t, intake, erasure.Submission{Subject: user("2")})
	if r.Status != erasure.RequestScheduled || r.NotBefore == nil || r.NotBefore.Sub(r.CreatedAt).Round(time.Second) != 72*time.Hour {
		t.Fatalf("submitted %s, not before %v", r.Status, r.NotBefore)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := intake.Request(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(taskStates(got), "profiles/hide=done") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hide task did not run: %s", taskStates(got))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !profiles.isHidden("2") {
		t.Fatal("the hide task is done but the dataset hid nothing")
	}
	if _, err := other.Cancel(t.Context(), r.ID); erasure.ErrorCode(err) != erasure.EFORBIDDEN {
		t.Fatalf("withdrawal by another channel: %v", err)
	}
	got, err := intake.Cancel(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != erasure.RequestCancelled || taskStates(got) != "profiles/erase=cancelled billing/erase=cancelled profiles/hide=done" {
		t.Fatalf("withdrawn: %s [%s]", got.Status, taskStates(got))
	}
	if !profiles.has("2") || !billing.has("2") {
		t.Fatal("a request withdrawn in its grace window erased something")
	}

	// A window of a second: the erasure follows when it ends.
	grace := time.Second
	r2 := submitVia(t, intake, erasure.Submission{Subject: user("5"), Grace: &grace})
	time.Sleep(grace)
	if _, err := intake.Cancel(t.Context(), r2.ID); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("withdrawal after the window: %v", err)
	}
	if _, err := s.Policies.EndGraceWindows(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, r2.ID, erasure.RequestCompleted)
	if profiles.has("5") || billing.has("5") {
		t.Fatal("not erased after the window")
	}
	none := time.Duration(0)
	r3 := submitVia(t, intake, erasure.Submission{Subject: user("6"), Grace: &none})
	if r3.Status == erasure.RequestScheduled {
		t.Fatal("grace 0 scheduled the request")
	}
	waitStatus(t, s, r3.ID, erasure.RequestCompleted)
	_ = op
}

func TestPolicies_Suppression(t *testing.T) {
	s, op, intake, _, checker := startWith(t, "", `  - { name: profiles, owner: team, connector: memory, memory: {} }
`, nil)
	waitStatus(t, s, submitVia(t, intake, erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "5"},
		erasure.Identifier{Type: "email", Value: "five@example.com"})}).ID, erasure.RequestCompleted)
	waitStatus(t, s, submitVia(t, intake, erasure.Submission{Subject: user("7"), NoSuppress: true}).ID, erasure.RequestCompleted)
	ids := []erasure.Identifier{{Type: "user_id", Value: "5"}, {Type: "email", Value: "five@example.com"}, {Type: "user_id", Value: "6"}, {Type: "user_id", Value: "7"}}
	got, err := checker.CheckSuppressed(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[true true false false]" {
		t.Fatalf("suppressed %v, want [true true false false] (5 and its email erased, 6 never, 7 opted out)", got)
	}
	if _, err := checker.Unsuppress(t.Context(), ids[:1], "x"); erasure.ErrorCode(err) != erasure.EFORBIDDEN {
		t.Fatalf("unsuppress with the check role: %v", err)
	}
	if _, err := op.Unsuppress(t.Context(), ids[:1], ""); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Fatalf("unsuppress without a reason: %v", err)
	}
	removed, err := op.Unsuppress(t.Context(), ids[:1], "erased by mistake, ticket 77")
	if err != nil || !removed[0] {
		t.Fatalf("unsuppress %v, %v", removed, err)
	}
	if got, _ := checker.CheckSuppressed(t.Context(), ids); fmt.Sprint(got) != "[false true false false]" {
		t.Fatalf("after unsuppress %v", got)
	}
	evs, err := op.Audit(t.Context(), erasure.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var audited bool
	for _, ev := range evs {
		if ev.Type == erasure.EventSuppressionRemoved && ev.Actor == "operator" && strings.Contains(string(ev.Data), "ticket 77") && !strings.Contains(string(ev.Data), `"5"`) {
			audited = true
		}
	}
	if !audited {
		t.Fatal("no suppression.removed event by the operator")
	}
	t.Run("Export", func(t *testing.T) {
		body, err := op.ExportSuppressions(t.Context(), "hashes", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		b := readAll(t, body)
		lines := strings.Fields(string(b))
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "email:") {
			t.Fatalf("export %q", b)
		}
		body, err = op.ExportSuppressions(t.Context(), "bloom", "email", 0.01)
		if err != nil {
			t.Fatal(err)
		}
		var f erasure.SuppressionFilter
		if err := jsonUnmarshal(readAll(t, body), &f); err != nil || f.Count != 1 || !f.MayHold(lines[0]) {
			t.Fatalf("bloom %+v, %v", f, err)
		}
		if _, err := checker.ExportSuppressions(t.Context(), "hashes", "", 0); erasure.ErrorCode(err) != erasure.EFORBIDDEN {
			t.Fatalf("export with the check role: %v", err)
		}
	})
}

// TestPolicies_ReplayAfterRestore: a PostgreSQL table restored from a copy taken before 100
// erasures gets exactly those 100 subjects' rows removed again by a replay, and nothing else,
// with no identifier in clear: the store keeps only keyed hashes of completed requests.
func TestPolicies_ReplayAfterRestore(t *testing.T) {
	dsn := testenv.PostgresSchema(t, "replay")
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(t.Context(), q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE users (id BIGINT NOT NULL, email TEXT, note TEXT)`)
	exec(`INSERT INTO users SELECT i, 'user' || i || '-' || j || '@example.com', 'note ' || i FROM generate_series(1, 1000) i, generate_series(0, i % 3) j`)
	exec(`CREATE TABLE users_backup AS SELECT * FROM users`)
	since := time.Now().Add(-time.Second).UTC() // the backup's time
	s, op, intake, _, _ := startWith(t, "", `  - name: accounts
    owner: team
    connector: sql
    sql: { driver: postgres, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id }, batch: 100 }
`, map[string]string{"DSN": dsn})
	var reqs []string
	erased := map[int]bool{}
	for i := 7; len(erased) < 100; i += 9 {
		erased[i] = true
		reqs = append(reqs, submitVia(t, intake, erasure.Submission{Subject: user(fmt.Sprint(i))}).ID)
	}
	for _, id := range reqs {
		waitStatus(t, s, id, erasure.RequestCompleted)
	}
	sum := func() (string, int64) {
		rows, err := db.QueryContext(t.Context(), `SELECT id, email FROM users ORDER BY id, email`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		h := sha256.New()
		var n int64
		for rows.Next() {
			var id int64
			var email string
			rows.Scan(&id, &email)
			fmt.Fprintf(h, "%d|%s\n", id, email)
			n++
		}
		return fmt.Sprintf("%x", h.Sum(nil)), n
	}
	wantSum, wantN := sum()
	exec(`DELETE FROM users`)
	exec(`INSERT INTO users SELECT * FROM users_backup`)
	_, restored := sum()
	if restored == wantN {
		t.Fatal("the restore brought nothing back")
	}

	wait := func(id string) erasure.Replay {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			rs, err := op.Replays(t.Context(), "accounts")
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if r.ID == id && r.State != erasure.ReplayRunning {
					return r
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("replay %s did not end", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	dry, err := op.StartReplay(t.Context(), "accounts", since, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := wait(dry.ID); got.State != erasure.ReplayDone || got.Matched != 100 || got.Removed != 0 || got.Subjects != 100 || got.Method != "scan" {
		t.Fatalf("dry run %+v", got)
	}
	if _, n := sum(); n != restored {
		t.Fatal("the dry run removed rows")
	}
	rp, err := op.StartReplay(t.Context(), "accounts", since, false)
	if err != nil {
		t.Fatal(err)
	}
	got := wait(rp.ID)
	if got.State != erasure.ReplayDone || got.Matched != 100 || got.Scanned != 1000 || got.Removed != restored-wantN {
		t.Fatalf("replay %+v; want 100 of 1000 keys matched, %d rows removed", got, restored-wantN)
	}
	if gotSum, n := sum(); n != wantN || gotSum != wantSum {
		t.Fatalf("after the replay %d rows (%s), want %d (%s)", n, gotSum, wantN, wantSum)
	}
	evs, _ := op.Audit(t.Context(), erasure.AuditFilter{})
	var audited int
	for _, ev := range evs {
		if ev.Type == erasure.EventReplayRun && ev.Dataset == "accounts" {
			audited++
		}
	}
	if audited != 2 {
		t.Fatalf("%d replay.run events, want 2", audited)
	}
	if _, err := op.StartReplay(t.Context(), "accounts", time.Now().Add(time.Hour), false); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Fatalf("replay since a future time: %v", err)
	}
}

// TestPolicies_EscrowReplay: a dataset that cannot be scanned is replayed from its escrow: the
// erased subject is submitted again, for that dataset alone.
func TestPolicies_EscrowReplay(t *testing.T) {
	s, op, intake, _, _ := startWith(t, "", `  - { name: profiles, owner: team, connector: memory, memory: {}, replay: { escrow: 30d } }
  - { name: billing, owner: finance, connector: memory, memory: {} }
`, nil)
	since := time.Now().Add(-time.Second)
	waitStatus(t, s, submitVia(t, intake, erasure.Submission{Subject: user("8")}).ID, erasure.RequestCompleted)
	profiles := s.Config.Dataset("profiles").Conn.(*memory)
	billing := s.Config.Dataset("billing").Conn.(*memory)
	profiles.restore("8") // the backup brings user 8 back
	if _, err := op.StartReplay(t.Context(), "billing", since, false); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Fatalf("replay of a dataset without scan nor escrow: %v", err)
	}
	rp, err := op.StartReplay(t.Context(), "profiles", since, false)
	if err != nil || rp.Method != "escrow" {
		t.Fatalf("%+v, %v", rp, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for profiles.has("8") {
		if time.Now().After(deadline) {
			t.Fatal("the replay did not erase user 8 again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rs, _ := op.Replays(t.Context(), "profiles")
	if len(rs) != 1 || rs[0].Submitted != 1 || rs[0].Subjects != 1 {
		t.Fatalf("replays %+v", rs)
	}
	page, _ := op.Requests(t.Context(), erasure.RequestFilter{})
	if len(page.Requests) != 2 || page.Requests[0].Reason != "replay" || len(page.Requests[0].Tasks) != 0 && page.Requests[0].Tasks[0].Dataset != "profiles" {
		t.Fatalf("requests %+v", page.Requests)
	}
	if billing.has("8") {
		t.Fatal("billing kept user 8")
	}
}

// TestPolicies_RetentionThroughTheAPI: a files dataset's retention, dry run then for good,
// stored and audited with its counts.
func TestPolicies_RetentionThroughTheAPI(t *testing.T) {
	snap := t.TempDir()
	var b strings.Builder
	old := 0
	for i := 0; i < 200; i++ {
		at := time.Now().AddDate(0, 0, -i*3)
		if at.Before(time.Now().AddDate(0, 0, -400)) {
			old++
		}
		fmt.Fprintf(&b, `{"user_id":"%d","created_at":%q}`+"\n", i, at.UTC().Format(time.RFC3339))
	}
	if err := os.WriteFile(filepath.Join(snap, "events.jsonl"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	_, op, intake, _, _ := startWith(t, "", fmt.Sprintf(`  - name: events
    owner: data
    connector: files
    files: { path: %q, format: jsonl, key: { field: user_id, identifier: user_id } }
    retention: { older_than: 400d, column: created_at, every: 24h }
`, snap), nil)
	// The schedule ran once at start; wait for it, then run by hand.
	deadline := time.Now().Add(10 * time.Second)
	for {
		runs, err := op.RetentionRuns(t.Context(), "events", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 1 && runs[0].State != erasure.RetentionRunning {
			if runs[0].State != erasure.RetentionDone || runs[0].Removed != int64(old) || runs[0].Actor != "retention" {
				t.Fatalf("scheduled run %+v, want %d removed", runs[0], old)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled run: %+v", runs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	run, err := op.RunRetention(t.Context(), "events", true)
	if err != nil || run.Expired != 0 || !run.DryRun {
		t.Fatalf("dry run after the scheduled one %+v, %v", run, err)
	}
	data, _ := os.ReadFile(filepath.Join(snap, "events.jsonl"))
	if n := strings.Count(string(data), "\n"); n != 200-old {
		t.Fatalf("%d rows left, want %d", n, 200-old)
	}
	if _, err := intake.RunRetention(t.Context(), "events", true); erasure.ErrorCode(err) != erasure.EFORBIDDEN {
		t.Fatalf("retention by an intake token: %v", err)
	}
	evs, _ := op.Audit(t.Context(), erasure.AuditFilter{})
	var counts []string
	for _, ev := range evs {
		if ev.Type == erasure.EventRetentionRun {
			counts = append(counts, string(ev.Data))
		}
	}
	if len(counts) != 2 || !strings.Contains(counts[0], fmt.Sprintf(`"removed":%d`, old)) {
		t.Fatalf("retention events %v", counts)
	}
}

func readAll(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
