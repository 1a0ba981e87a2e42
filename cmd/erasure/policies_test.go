package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// policyConfig: a SQLite accounts table and a JSON lines snapshot with a retention policy.
const policyConfig = `version: 1
server: { addr: %q, data_dir: %q, workers: 4 }
auth:
  tokens:
    - { name: ops, secret: "${ERASURE_POLICY_TOKEN}", roles: [submit, operate] }
identifiers: [user_id, email]
defaults: { backoff: { initial: 20ms, max: 200ms } }
datasets:
  - name: accounts
    owner: app
    connector: sql
    sql: { driver: sqlite, dsn: %q, table: users, key: { column: id, identifier: user_id } }
  - name: events
    owner: data
    connector: files
    files: { path: %q, format: jsonl, key: { field: user_id, identifier: user_id } }
    retention: { older_than: 30d, column: at, every: 8760h }
`

func TestPolicyCommands(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustExec := func(q string) {
		t.Helper()
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(`CREATE TABLE users (id INTEGER, email TEXT)`)
	for i := 1; i <= 20; i++ {
		mustExec(fmt.Sprintf(`INSERT INTO users VALUES (%d, 'u%d@example.com')`, i, i))
	}
	mustExec(`CREATE TABLE users_backup AS SELECT * FROM users`)
	snap := filepath.Join(dir, "events")
	os.MkdirAll(snap, 0o755)
	var b strings.Builder
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&b, `{"user_id":"%d","at":%q}`+"\n", i, time.Now().AddDate(0, 0, -i*10).UTC().Format(time.RFC3339))
	}
	os.WriteFile(filepath.Join(snap, "e.jsonl"), []byte(b.String()), 0o644)

	secret := randomToken()
	t.Setenv("ERASURE_POLICY_TOKEN", secret)
	cfg := writeConfig(t, fmt.Sprintf(policyConfig, freeAddr(t), filepath.Join(dir, "data"), dbPath, snap))
	m := startMain(t, cfg)
	t.Setenv("ERASURE_URL", m.URL())
	t.Setenv("ERASURE_TOKEN", secret)
	since := time.Now().Add(-time.Second).UTC().Format(time.RFC3339)

	for _, name := range []string{"holds add", "holds list", "holds release", "suppressions check", "suppressions export", "suppressions unsuppress",
		"suppressions key", "retention run", "retention list", "replay", "submit"} {
		code, out, errOut := run(t, append(strings.Fields(name), "--help")...)
		if code != 0 || !strings.HasPrefix(out, "usage: erasure "+name) {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", name, code, out, errOut)
		}
	}

	// Retention: the schedule ran at start; a dry run now finds nothing more.
	deadline := time.Now().Add(10 * time.Second)
	var code int
	var out, errOut string
	for {
		_, out, _ = run(t, "retention", "list", "events")
		if strings.Contains(out, " done") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no retention run:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out, "7 rows older than") || !strings.Contains(out, "7 removed") {
		t.Fatalf("retention list:\n%s", out)
	}
	if code, out, _ := run(t, "retention", "run", "events", "--dry-run"); code != 0 || !strings.Contains(out, "dry run: 0 rows") {
		t.Fatalf("retention dry run: %d %s", code, out)
	}

	code, out, errOut = run(t, "holds", "add", "user_id:3", "--datasets", "accounts", "--reason", "case 2026-9")
	holdID := strings.TrimSpace(out)
	if code != 0 || !regexp.MustCompile(`^h_[0-9a-z]{26}$`).MatchString(holdID) || strings.Contains(errOut, ":3 ") {
		t.Fatalf("holds add: exit %d, %q, %q", code, out, errOut)
	}
	if code, _, _ := run(t, "holds", "add", "user_id:3", "--reason", "x"); code != 2 {
		t.Fatalf("holds add without datasets: exit %d", code)
	}
	code, out, _ = run(t, "submit", "user_id=3")
	if code != 0 {
		t.Fatal(out)
	}
	reqID := strings.TrimSpace(out)
	// The held task waits; the snapshot's task goes on to wait for a sweep.
	held := regexp.MustCompile(`accounts +erase +realtime +held .*held by ` + holdID)
	queued := regexp.MustCompile(`events +erase +offline +queued`)
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, out, _ = run(t, "status", reqID)
		if held.MatchString(out) && queued.MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the hold and the queued task:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, out, _ := run(t, "holds", "list"); code != 0 || !strings.Contains(out, holdID) || !strings.Contains(out, "1 holds") {
		t.Fatalf("holds list: %d %s", code, out)
	}
	if code, out, _ := run(t, "holds", "release", holdID); code != 0 || !strings.Contains(out, "released") {
		t.Fatalf("holds release: %d %s", code, out)
	}
	sweepPoll = 20 * time.Millisecond
	if code, out, errOut := run(t, "sweep", "run", "events", "--wait"); code != 0 || !strings.Contains(out, "committed") {
		t.Fatalf("sweep: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := run(t, "wait", reqID, "--timeout", "10s"); code != 0 {
		_, st, _ := run(t, "status", reqID)
		t.Fatalf("wait: %d %s %s\n%s", code, out, errOut, st)
	}
	if code, _, _ := run(t, "holds", "release", holdID); code != 5 {
		t.Fatalf("release twice: exit %d, want 5 (conflict)", code)
	}

	code, out, _ = run(t, "suppressions", "check", "user_id:3", "user_id:4")
	if code != 0 || !strings.Contains(out, "#1 user_id: SUPPRESSED") || !strings.Contains(out, "#2 user_id: not suppressed") || strings.Contains(out, ":3") {
		t.Fatalf("check: %d\n%s", code, out)
	}
	export := filepath.Join(dir, "list.txt")
	if code, out, _ := run(t, "suppressions", "export", "-o", export); code != 0 || !strings.Contains(out, "written to") {
		t.Fatalf("export: %d %s", code, out)
	}
	if data, _ := os.ReadFile(export); len(strings.Fields(string(data))) != 1 {
		t.Fatalf("export %q", data)
	}
	if code, out, _ := run(t, "suppressions", "export", "--format", "bloom"); code != 0 || !strings.Contains(out, `"format":"erasure-suppressions-bloom/1"`) {
		t.Fatalf("bloom: %d %s", code, out)
	}
	if code, _, _ := run(t, "suppressions", "unsuppress", "user_id:3"); code != 2 {
		t.Fatalf("unsuppress without a reason: exit %d", code)
	}
	if code, out, _ := run(t, "suppressions", "unsuppress", "user_id:3", "--reason", "ticket 5"); code != 0 || !strings.Contains(out, "1 of 1 identifiers taken off") {
		t.Fatalf("unsuppress: %d %s", code, out)
	}
	if code, out, _ := run(t, "suppressions", "key", "--config", cfg); code != 0 || !regexp.MustCompile(`^[0-9a-f]{64}\n$`).MatchString(out) {
		t.Fatalf("key: %d %q", code, out)
	}

	// Replay: the accounts table comes back from its backup.
	mustExec(`DELETE FROM users`)
	mustExec(`INSERT INTO users SELECT * FROM users_backup`)
	replayPoll = 20 * time.Millisecond
	code, out, errOut = run(t, "replay", "accounts", "--since", since)
	if code != 0 || !strings.Contains(out, "1 matched, 1 rows removed") {
		t.Fatalf("replay: %d %s %s", code, out, errOut)
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM users WHERE id = 3`).Scan(&n)
	if n != 0 {
		t.Fatal("user 3 is back after the replay")
	}
	if code, _, _ := run(t, "replay", "accounts"); code != 2 {
		t.Fatalf("replay without --since: exit %d", code)
	}
}
