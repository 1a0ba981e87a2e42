package main

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/scan"
	"erasure/store/sqlite"
)

// scanEstate is a SQLite database with a registered users table, an unregistered newsletter
// table holding the address of a subject whose erasure completed, and a clean notes table;
// and a data directory with the store and audit key that erasure recorded.
func scanEstate(t *testing.T) (config, estateDB string) {
	t.Helper()
	dir := t.TempDir()
	estateDB = filepath.Join(dir, "estate.db")
	db, err := sql.Open("sqlite", estateDB)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)`,
		`INSERT INTO users VALUES (2, 'b@example.com'), (3, 'c@example.com')`,
		`CREATE TABLE newsletter (email TEXT, since TEXT)`,
		`INSERT INTO newsletter VALUES ('a@example.com', '2024-01-01'), ('d@example.com', '2024-01-02')`,
		`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)`,
		`INSERT INTO notes VALUES (1, 'call back on Monday'), (2, '1')`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	db.Close()

	dataDir := filepath.Join(dir, "data")
	key := []byte("0123456789abcdef0123456789abcdef")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "audit.key"), []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, _ := audit.NewHasher(key)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "erasure.db"), sqlite.Options{Hasher: h, Chain: h.Chain()})
	if err != nil {
		t.Fatal(err)
	}
	subject := erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "1"}, erasure.Identifier{Type: "email", Value: "a@example.com"})
	if _, _, err := st.CreateRequest(ctx, erasure.NewRequest{ID: "r_scan", Subject: subject, Reason: "user_request", Deadline: time.Now().Add(time.Hour), SubmittedBy: "t",
		Tasks: []erasure.TaskSpec{{Dataset: "accounts.users", Kind: erasure.TaskErase, Method: erasure.MethodRealtime}}}); err != nil {
		t.Fatal(err)
	}
	tasks, err := st.LeaseTasks(ctx, "t", 10, time.Minute)
	if err != nil || len(tasks) != 1 {
		t.Fatalf("lease: %v %v", tasks, err)
	}
	task := tasks[0]
	if _, err := st.FinishTasks(ctx, []erasure.TaskResult{{TaskID: task.ID, RequestID: task.RequestID, Dataset: task.Dataset, Kind: task.Kind,
		Owner: "t", Attempt: task.Attempts, State: erasure.TaskDone, Removed: 1, StartedAt: time.Now(), FinishedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Request(ctx, "r_scan"); err != nil || r.Status != erasure.RequestCompleted {
		t.Fatalf("request: %+v %v", r, err)
	}
	st.Close()

	config = writeConfig(t, `version: 1
server: { data_dir: `+dataDir+` }
identifiers: [user_id, email]
datasets:
  - name: accounts.users
    owner: accounts-team
    connector: sql
    sql: { driver: sqlite, dsn: "`+estateDB+`", table: users, key: { column: id, identifier: user_id } }
    provides: [ { identifier: email, column: email } ]
  - name: profile-service
    owner: profile-team
    connector: http
    http: { erase: { method: DELETE, url: "http://127.0.0.1:1/users/{user_id}" } }
`)
	return config, estateDB
}

func TestScanCommand(t *testing.T) {
	config, estateDB := scanEstate(t)

	t.Run("JSONFindingsExitOne", func(t *testing.T) {
		code, out, errOut := run(t, "scan", "--config", config, "--json")
		if code != 1 || !strings.Contains(errOut, "erasure scan: 2 findings: 1 unregistered, 1 residue") {
			t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
		if !strings.Contains(errOut, "scan: sql sqlite:"+estateDB+": table 1/3 main.newsletter: 2 rows") {
			t.Errorf("no progress on stderr:\n%s", errOut)
		}
		var rep scan.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("stdout is not a JSON report: %v\n%s", err, out)
		}
		if !rep.ResidueChecked || rep.Erased != 2 || len(rep.Sources) != 1 || rep.Sources[0].Rows != 6 {
			t.Errorf("report = %+v", rep)
		}
		h, _ := audit.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
		want := []scan.Finding{
			{Kind: scan.Unregistered, Location: "newsletter.email", Identifier: "email", NameMatch: true, Matched: 2, Sampled: 2},
			{Kind: scan.Residue, Location: "newsletter.email", Identifier: "email", NameMatch: true, Matched: 2, Sampled: 2,
				Hash: h.Identifier(erasure.Identifier{Type: "email", Value: "a@example.com"}), Values: 1},
		}
		if len(rep.Findings) != len(want) {
			t.Fatalf("findings = %+v", rep.Findings)
		}
		for i, f := range rep.Findings {
			if f.Source != "sqlite:"+estateDB || (f.Kind == scan.Unregistered) != (f.Suggestion != "") {
				t.Errorf("finding %d: source %q, suggestion %q", i, f.Source, f.Suggestion)
			}
			f.Source, f.Suggestion = "", ""
			if f != want[i] {
				t.Errorf("finding %d = %+v, want %+v", i, f, want[i])
			}
		}
		if strings.Contains(out, "a@example.com") || strings.Contains(errOut, "a@example.com") {
			t.Error("the erased address is printed in clear")
		}
	})
	t.Run("TextReport", func(t *testing.T) {
		code, out, _ := run(t, "scan", config, "--quiet")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 1 || !strings.HasPrefix(lines[0], "KIND") || !strings.Contains(out, "suggested registry entries:") ||
			!strings.Contains(out, "- name: accounts.newsletter\n") || !strings.Contains(out, "key: { column: email, identifier: email }") {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if last := lines[len(lines)-1]; last != "1 source scanned, 6 rows and keys sampled: 1 unregistered, 1 residue (against 2 erased identifiers)" {
			t.Errorf("last line = %q", last)
		}
	})
	t.Run("WithoutStoreStillFindsUnregistered", func(t *testing.T) {
		empty := t.TempDir()
		code, out, errOut := run(t, "scan", config, "--data-dir", empty)
		if code != 1 || !strings.Contains(errOut, "residue not checked: no store at") || !strings.Contains(out, "(residue not checked: no store)") ||
			!strings.Contains(out, "unregistered  sqlite:") || strings.Contains(out, "residue  ") {
			t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
		if left, _ := os.ReadDir(empty); len(left) != 0 {
			t.Errorf("scan wrote into the data directory: %v", left)
		}
	})
	t.Run("CleanEstateExitsZero", func(t *testing.T) {
		db, _ := sql.Open("sqlite", estateDB)
		if _, err := db.Exec(`DROP TABLE newsletter`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		code, out, errOut := run(t, "scan", config)
		if code != 0 || !strings.HasPrefix(out, "no findings\n") || !strings.HasSuffix(out, ": 0 unregistered, 0 residue (against 2 erased identifiers)\n") {
			t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
	})
	t.Run("BadInput", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			says string
		}{
			{[]string{"--sample", "0"}, 2, "--sample must be between 1"},
			{[]string{"--budget", "-1s"}, 2, "--budget must be positive"},
			{[]string{"--dataset", "profile-service"}, 2, "dataset profile-service uses the http connector"},
			{[]string{"--dataset", "nope"}, 3, "dataset nope is not in the registry"},
			{[]string{"other.yaml"}, 2, "give one configuration file"},
		} {
			code, _, errOut := run(t, append([]string{"scan", "--config", config}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.says) {
				t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.says)
			}
		}
	})
}
