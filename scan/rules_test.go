package scan_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"erasure"
	"erasure/audit"
	"erasure/registry"
	"erasure/scan"
)

// erasedList is an ErasedStore of fixed hashes.
type erasedList []string

func (e erasedList) ErasedHashes(context.Context) ([]string, error) { return e, nil }

// TestRun_Rules runs a scan over a SQLite database built so that each table tests one rule of
// recognition, coverage or residue. It needs no service.
func TestRun_Rules(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		// Registered: key and provides are covered, and hold their types for residue.
		`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, name TEXT)`,
		`INSERT INTO users VALUES (1, 'a@example.com', 'Ana'), (2, 'b@example.com', 'Bo')`,
		// Redacted columns are covered too; the registered table's other columns are not.
		`CREATE TABLE profiles (user_id INTEGER, backup_email TEXT, bio TEXT, phone TEXT)`,
		`INSERT INTO profiles VALUES (2, 'x@example.org', 'likes tea', '+33 1 23 45 67 89')`,
		// Upper case: an erased address found through its canonical form (normalize: lower).
		`CREATE TABLE archive (Email TEXT)`,
		`INSERT INTO archive VALUES ('  A@EXAMPLE.COM '), ('c@example.com')`,
		// A name match contradicted by the values is not a finding.
		`CREATE TABLE prefs (id INTEGER, email_verified INTEGER, email_sent_count TEXT, doc TEXT)`,
		// Objects keyed by values: the keys are one place, never printed.
		`INSERT INTO prefs VALUES (1, 1, 'three', '{"contact": {"email": "d@example.com", "since": "2024"}, "tags": ["e@example.com"], "n": 1,
			"seen": {"a@example.com": true}, "owners": {"usr_ab12": "rw"}, "scores": {"1": 5, "2": 7}}'),
			(2, 0, 'none', '{"contact": {"email": "f@example.com"}, "tags": [], "n": 2}')`,
		// Less than half the values: free text is not an e-mail column.
		`CREATE TABLE comments (id INTEGER, body TEXT)`,
		`INSERT INTO comments VALUES (1, 'write to g@example.com'), (2, 'g@example.com'), (3, 'hello'), (4, 'thanks'), (5, 'ok')`,
		// The erased user id 1 as a price, a quantity and an id is not residue.
		`CREATE TABLE products (id INTEGER, price INTEGER, qty INTEGER, user_ref INTEGER)`,
		`INSERT INTO products VALUES (1, 1, 1, 7)`,
		// Named like the type: recognized without a value pattern, and residue.
		`CREATE TABLE visits (user_id INTEGER, at TEXT)`,
		`INSERT INTO visits VALUES (1, '2024-01-01'), (5, '2024-01-02')`,
		// An empty table named like a type is a finding too: the place is there.
		`CREATE TABLE mailing (email TEXT)`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	db.Close()
	src := `version: 1
identifiers:
  - user_id
  - { name: email, normalize: lower, trim: true }
  - phone
datasets:
  - name: app.users
    owner: app-team
    connector: sql
    sql: { driver: sqlite, dsn: "` + dbPath + `", table: users, key: { column: id, identifier: user_id } }
    provides: [ { identifier: email, column: email } ]
  - name: app.profiles
    owner: app-team
    connector: sql
    sql: { driver: sqlite, dsn: "` + dbPath + `", table: profiles, key: { column: user_id, identifier: user_id }, action: redact, columns: [backup_email, bio] }
`
	file := filepath.Join(dir, "erasure.yaml")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := registry.Parse(file, []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range cfg.Datasets {
			d.Conn.Close()
		}
	})
	h, _ := audit.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	erased := erasedList{
		h.Identifier(erasure.Identifier{Type: "user_id", Value: "1"}),
		h.Identifier(erasure.Identifier{Type: "email", Value: "a@example.com"}),
		h.Identifier(erasure.Identifier{Type: "email", Value: "e@example.com"}),
		h.Identifier(erasure.Identifier{Type: "user_id", Value: "usr_ab12"}),
		h.Identifier(erasure.Identifier{Type: "fax", Value: "1"}), // a type no longer declared
	}
	rep, err := scan.Run(context.Background(), cfg, scan.Options{Erased: erased, Hasher: h})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Sources) != 1 || rep.Sources[0].Error != "" || rep.Sources[0].Units != 8 || rep.Erased != 5 {
		t.Fatalf("sources = %+v, erased %d", rep.Sources, rep.Erased)
	}
	var got []string
	for _, f := range rep.Findings {
		got = append(got, string(f.Kind)+" "+f.Location+" "+f.Identifier)
	}
	want := []string{
		"unregistered archive.Email email",
		"unregistered mailing.email email",
		"unregistered prefs.doc.contact.email email",
		"unregistered prefs.doc.seen[keys] email",
		"unregistered prefs.doc.tags[] email",
		"unregistered profiles.phone phone",
		"unregistered visits.user_id user_id",
		"residue archive.Email email",
		"residue prefs.doc.owners[keys] user_id",
		"residue prefs.doc.seen[keys] email",
		"residue prefs.doc.tags[] email",
		"residue users.email email",
		"residue users.id user_id",
		"residue visits.user_id user_id",
	}
	sort.Strings(got[:7])
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	out, _ := json.Marshal(rep)
	for _, clear := range []string{"usr_ab12", "a@example.com", `"1"`, "scores.1"} {
		if bytes.Contains(out, []byte(clear)) {
			t.Errorf("the report holds %s", clear)
		}
	}
	for _, f := range rep.Findings {
		switch {
		case f.Location == "archive.Email" && f.Kind == scan.Residue:
			if f.Hash != erased[1] || f.Values != 1 || f.Dataset != "" {
				t.Errorf("archive residue = %+v", f)
			}
		case f.Location == "profiles.phone":
			if !strings.Contains(f.Suggestion, "add to dataset app.profiles") || f.Dataset != "app.profiles" {
				t.Errorf("profiles.phone = %+v", f)
			}
		case f.Location == "prefs.doc.contact.email":
			if !strings.HasPrefix(f.Suggestion, "# doc holds JSON whose field contact.email looks like email values") {
				t.Errorf("suggestion for a JSON field:\n%s", f.Suggestion)
			}
		case f.Location == "mailing.email":
			if f.Sampled != 0 || !f.NameMatch || f.Evidence() != "name; no values sampled" {
				t.Errorf("mailing.email = %+v (%s)", f, f.Evidence())
			}
		case f.Location == "visits.user_id" && f.Kind == scan.Unregistered:
			if f.Evidence() != "name; 2 values sampled" {
				t.Errorf("visits.user_id evidence %q", f.Evidence())
			}
		}
	}
}

// TestRun_Options: bad options are refused before anything is read.
func TestRun_Options(t *testing.T) {
	cfg := &registry.Config{Identifiers: []string{"email"}}
	h, _ := audit.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	for name, opts := range map[string]scan.Options{
		"SampleTooLarge":    {Sample: scan.MaxSample + 1},
		"NegativeSample":    {Sample: -1},
		"NegativeBudget":    {Budget: -1},
		"StoreWithoutKey":   {Erased: erasedList{}},
		"KeyWithoutStore":   {Hasher: h},
		"UnknownDataset":    {Dataset: "nope"},
		"BadIdentifierType": {},
	} {
		t.Run(name, func(t *testing.T) {
			c := cfg
			if name == "BadIdentifierType" {
				c = &registry.Config{IdentifierTypes: []erasure.IdentifierType{{Name: "email", ScanValues: "("}}}
			}
			want := erasure.EINVALID
			if name == "UnknownDataset" {
				want = erasure.ENOTFOUND
			}
			if _, err := scan.Run(context.Background(), c, opts); erasure.ErrorCode(err) != want {
				t.Errorf("err = %v, want %s", err, want)
			}
		})
	}
	t.Run("NothingToScan", func(t *testing.T) {
		rep, err := scan.Run(context.Background(), cfg, scan.Options{})
		if err != nil || len(rep.Sources) != 0 || len(rep.Findings) != 0 || rep.Findings == nil {
			t.Errorf("report %+v, %v", rep, err)
		}
	})
}
