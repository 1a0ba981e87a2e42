package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/minio/highwayhash"
	"github.com/nats-io/nats.go/jetstream"

	"erasure"
	"erasure/audit"
	"erasure/client"
)

// The privacy suite runs a server over a real data dir with a SQL dataset, an offline
// snapshot (with its skip index) and an async NATS dataset on the embedded server, erases 100
// subjects and keeps 10 requests open, then reads every byte of the data dir and the snapshot
// dir: no identifier of an ended request may be there in clear, and no hash-like value there
// may be an unkeyed hash of one (a dictionary of the identifiers, tried with the usual hash
// functions, recovers nothing). The open requests' identifiers must be found in clear: they
// show that the scan reads what the server wrote.

const privacyConfig = `version: 1
server: { addr: "127.0.0.1:0", data_dir: %q, workers: 8 }
nats: { port: %d }
auth:
  tokens:
    - { name: admin, secret: "${PRIVACY_ADMIN_TOKEN}", roles: [submit, operate, read] }
    - { name: messaging, secret: "${PRIVACY_ACK_TOKEN}", roles: ["ack:notifications"] }
identifiers: [user_id, { name: email, normalize: lower, trim: true }]
defaults: { backoff: { initial: 10ms, max: 1s }, timeout: 10s, ack_timeout: 1h }
datasets:
  - name: app.users
    owner: app
    connector: sql
    sql: { driver: sqlite, dsn: %q, table: users, key: { column: id, identifier: user_id } }
  - name: warehouse.events
    owner: data
    connector: files
    sweep: { every: 24h }
    files: { path: %q, format: jsonl, key: { field: user_id, identifier: user_id }, index: true }
  - name: notifications
    owner: messaging
    connector: nats
    nats: { subject: erasure.privacy.notifications, identifiers: [user_id, email] }
`

type privacySubject struct {
	userID, email string
	req           string
}

func TestPrivacy_NothingRecoverableAfterErasure(t *testing.T) {
	dir := t.TempDir()
	data, snapshot, estate := filepath.Join(dir, "data"), filepath.Join(dir, "snapshot"), filepath.Join(dir, "estate")
	for _, d := range []string{snapshot, estate} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	const ended, open = 100, 10
	run := fmt.Sprintf("%x", time.Now().UnixNano())[:8]
	subjects := make([]privacySubject, ended+open)
	for i := range subjects {
		subjects[i] = privacySubject{userID: fmt.Sprintf("uid-%03d-%s", i, run), email: fmt.Sprintf("person%03d.%s@example.net", i, run)}
	}

	// The estate: a SQL table and a snapshot, both holding every subject and others.
	appDB := filepath.Join(estate, "app.db")
	db, err := sql.Open("sqlite", "file:"+appDB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT)`); err != nil {
		t.Fatal(err)
	}
	var lines [4]strings.Builder
	for i, s := range subjects {
		if _, err := db.Exec(`INSERT INTO users (id, email) VALUES (?, ?)`, s.userID, s.email); err != nil {
			t.Fatal(err)
		}
		for k := 0; k < 3; k++ {
			fmt.Fprintf(&lines[(i+k)%4], `{"user_id":%q,"email":%q,"n":%d}`+"\n", s.userID, s.email, k)
		}
	}
	for p := range lines {
		fmt.Fprintf(&lines[p], `{"user_id":"someone-else-%d","n":0}`+"\n", p)
		if err := os.WriteFile(filepath.Join(snapshot, fmt.Sprintf("part-%d.jsonl", p)), []byte(lines[p].String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	cfg := filepath.Join(dir, "erasure.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(privacyConfig, data, freeTCPPort(t), "file:"+appDB, snapshot)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PRIVACY_ADMIN_TOKEN", "privacy-admin-0123456789abcdef")
	t.Setenv("PRIVACY_ACK_TOKEN", "privacy-acker-0123456789abcdef")
	logs := &lockedBuffer{}
	m := &Main{ConfigPath: cfg, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if err := m.Run(t.Context()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	admin, _ := client.New(m.URL(), "privacy-admin-0123456789abcdef")
	acker, _ := client.New(m.URL(), "privacy-acker-0123456789abcdef")
	ctx := context.Background()

	for i := range subjects {
		s := &subjects[i]
		// The e-mail as a person types it: the server keeps its canonical form only.
		r, _, err := admin.Submit(ctx, erasure.Submission{Subject: erasure.NewSubject(
			erasure.Identifier{Type: "user_id", Value: s.userID}, erasure.Identifier{Type: "email", Value: " " + strings.ToUpper(s.email[:1]) + s.email[1:] + " "}),
			Reason: "user_request"}, "idem-"+s.userID)
		if err != nil {
			t.Fatal(err)
		}
		s.req = r.ID
	}
	// The owner of notifications acknowledges the commands of the first 100 subjects, read
	// from the stream as it would, and leaves the last 10 waiting.
	acked := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for len(acked) < ended && time.Now().Before(deadline) {
		for _, cmd := range streamCommands(t, m, "erasure.privacy.notifications") {
			idx := subjectIndex(subjects, cmd.RequestID)
			if idx < 0 || idx >= ended || acked[cmd.Dispatch] {
				continue
			}
			if _, err := acker.Ack(ctx, erasure.Ack{TaskID: cmd.TaskID, Dispatch: cmd.Dispatch, Status: erasure.AckDone, Removed: 1}); err != nil {
				t.Fatalf("ack: %v", err)
			}
			acked[cmd.Dispatch] = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := admin.RunSweep(ctx, "warehouse.events"); err != nil {
		t.Fatal(err)
	}
	for _, s := range subjects[:ended] {
		waitCompleted(t, admin, s.req)
		r, err := admin.Request(ctx, s.req)
		if err != nil {
			t.Fatal(err)
		}
		// Each subject had 3 rows in the snapshot: its offline task says so.
		for _, tk := range r.Tasks {
			if tk.Dataset == "warehouse.events" && tk.Removed != 3 {
				t.Errorf("request %s: the sweep reports %d rows removed for the subject, want 3", s.req, tk.Removed)
			}
		}
		if r.Found == nil || !*r.Found {
			t.Errorf("request %s: found %v, want true", s.req, r.Found)
		}
	}
	if r, err := admin.Request(ctx, subjects[ended].req); err != nil || r.Status.Ended() {
		t.Fatalf("the control request should be open: %+v %v", r, err)
	}

	var endedValues []string
	for _, s := range subjects[:ended] {
		endedValues = append(endedValues, s.userID, s.email)
	}
	var residue []string
	for until := time.Now().Add(30 * time.Second); ; {
		residue = clearResidue(t, []string{data, snapshot}, endedValues)
		if len(residue) == 0 || time.Now().After(until) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(residue) > 0 {
		t.Errorf("%d identifiers of ended requests are still in clear on disk, for example:\n  %s", len(residue), strings.Join(residue[:min(len(residue), 10)], "\n  "))
	}
	var openValues []string
	for _, s := range subjects[ended:] {
		openValues = append(openValues, s.userID)
	}
	if found := len(clearResidue(t, []string{data}, openValues)); found != open {
		t.Fatalf("the scan found %d of the %d open requests' identifiers in the data dir: it does not read what the server wrote", found, open)
	}

	// The dictionary: every identifier of the ended requests, as submitted and canonical,
	// alone and with its type, and the submissions themselves (what a fingerprint covers).
	var dict []string
	for _, s := range subjects[:ended] {
		for _, v := range []string{s.userID, s.email, " " + strings.ToUpper(s.email[:1]) + s.email[1:] + " "} {
			dict = append(dict, v)
		}
		for _, id := range []erasure.Identifier{{Type: "user_id", Value: s.userID}, {Type: "email", Value: s.email}} {
			dict = append(dict, id.Type+":"+id.Value, id.Type+"\x00"+id.Value, id.Type+"="+id.Value, id.Type+id.Value)
		}
		sub := erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: s.userID}, erasure.Identifier{Type: "email", Value: s.email}), Reason: "user_request"}
		dict = append(dict, string(sub.Canonical()), "idem-"+s.userID, "admin\x00idem-"+s.userID)
	}
	att := newDictionaryAttack(dict)
	// The attack works: an unkeyed hash planted in a file is recovered.
	plant := t.TempDir()
	os.WriteFile(filepath.Join(plant, "leak.json"), []byte(`{"fp":"`+hex.EncodeToString(sha256Sum(dict[0]))+`"}`), 0o600)
	if hits := att.scan(t, plant); len(hits) != 1 {
		t.Fatalf("the dictionary attack does not find a planted SHA-256 of an identifier: %v", hits)
	}
	if hits := att.scan(t, data, snapshot); len(hits) > 0 {
		t.Errorf("the dictionary attack recovered %d identifiers from hash-like values on disk:\n  %s", len(hits), strings.Join(hits[:min(len(hits), 10)], "\n  "))
	}
	t.Logf("scanned %d hash-like values with a dictionary of %d entries and %d hash functions", att.tokens, len(dict), len(hashFuncs))

	// The snapshot's skip index still describes the open requests' rows, under the
	// deployment's index key: no unkeyed hash of their identifiers either, and every sidecar
	// names that key.
	if hits := newDictionaryAttack(openValues).scan(t, snapshot); len(hits) > 0 {
		t.Errorf("the dictionary attack recovered %d identifiers of open requests from the snapshot's state:\n  %s", len(hits), strings.Join(hits[:min(len(hits), 10)], "\n  "))
	}
	auditKey, err := audit.LoadKey("", data)
	if err != nil {
		t.Fatal(err)
	}
	keyID := highwayhash.Sum64([]byte("erasure skip index key"), audit.IndexKey(auditKey))
	sidecars := 0
	filepath.WalkDir(snapshot, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".idx") {
			sidecars++
			if b, _ := os.ReadFile(p); len(b) < 16 || binary.LittleEndian.Uint64(b[8:16]) != keyID {
				t.Errorf("sidecar %s is not under the deployment's index key", p)
			}
		}
		return nil
	})
	if sidecars == 0 {
		t.Error("the snapshot has no skip index sidecar")
	}

	// The server's logs, at debug level, and its metrics never carry an identifier, of an
	// ended request or an open one, in clear or as an unkeyed hash.
	logDir := t.TempDir()
	os.WriteFile(filepath.Join(logDir, "server.log"), logs.Bytes(), 0o600)
	// And neither do its metrics.
	resp, err := http.Get(m.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte("erasure_")) {
		t.Fatalf("no metrics read: %.200s", metrics)
	}
	os.WriteFile(filepath.Join(logDir, "metrics.txt"), metrics, 0o600)
	var all []string
	for _, s := range subjects {
		all = append(all, s.userID, s.email)
	}
	if r := clearResidue(t, []string{logDir}, all); len(r) > 0 || logs.Len() == 0 {
		t.Errorf("the server's logs (%d bytes) hold identifiers: %v", logs.Len(), r)
	}
	if hits := att.scan(t, logDir); len(hits) > 0 {
		t.Errorf("the server's logs hold unkeyed hashes of identifiers: %v", hits)
	}
}

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func sha256Sum(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func subjectIndex(ss []privacySubject, req string) int {
	for i := range ss {
		if ss[i].req == req {
			return i
		}
	}
	return -1
}

func waitCompleted(t *testing.T, c *client.Client, id string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := c.Request(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == erasure.RequestCompleted {
			return
		}
		if r.Status.Ended() || r.Status == erasure.RequestFailed || time.Now().After(deadline) {
			b, _ := json.Marshal(r.Tasks)
			t.Fatalf("request %s is %s: %s", id, r.Status, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type streamCommand struct {
	TaskID    int64  `json:"task_id"`
	RequestID string `json:"request_id"`
	Dispatch  string `json:"dispatch"`
}

// streamCommands reads the commands the stream holds on subject, as their owner would.
func streamCommands(t *testing.T, m *Main, subject string) []streamCommand {
	t.Helper()
	js := m.Server.NATS.JetStream()
	cons, err := js.OrderedConsumer(context.Background(), m.Server.NATS.Stream(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out []streamCommand
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			var c streamCommand
			if json.Unmarshal(msg.Data(), &c) == nil {
				out = append(out, c)
			}
		}
		if n == 0 {
			return out
		}
	}
}

// clearResidue returns the values found in clear in any file under dirs, with the file.
func clearResidue(t *testing.T, dirs, values []string) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	walkFiles(t, dirs, func(path string, b []byte) {
		lower := bytes.ToLower(b)
		for _, v := range values {
			if !seen[v] && (bytes.Contains(b, []byte(v)) || bytes.Contains(lower, []byte(strings.ToLower(v)))) {
				seen[v] = true
				out = append(out, v+" in "+path)
			}
		}
	})
	return out
}

func walkFiles(t *testing.T, dirs []string, f func(path string, b []byte)) {
	t.Helper()
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !d.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			f(path, b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// hashFuncs are the unkeyed hashes a dictionary attack tries.
var hashFuncs = map[string]func([]byte) []byte{
	"md5":    func(b []byte) []byte { h := md5.Sum(b); return h[:] },
	"sha1":   func(b []byte) []byte { h := sha1.Sum(b); return h[:] },
	"sha256": func(b []byte) []byte { h := sha256.Sum256(b); return h[:] },
	"sha512": func(b []byte) []byte { h := sha512.Sum512(b); return h[:] },
	"fnv64a": func(b []byte) []byte { h := fnv.New64a(); h.Write(b); return h.Sum(nil) },
	"fnv128a": func(b []byte) []byte {
		h := fnv.New128a()
		h.Write(b)
		return h.Sum(nil)
	},
	"xxhash64": func(b []byte) []byte { return binary.BigEndian.AppendUint64(nil, xxhash.Sum64(b)) },
}

// dictionaryAttack knows every hash of every dictionary entry, as hex (and its prefixes of
// 16 digits and more, for truncated hashes) and as raw 8-byte words (both byte orders, for
// binary indexes).
type dictionaryAttack struct {
	hexes  map[string]string // hex prefix → what it is the hash of
	words  map[uint64]string
	tokens int
}

func newDictionaryAttack(dict []string) *dictionaryAttack {
	a := &dictionaryAttack{hexes: map[string]string{}, words: map[uint64]string{}}
	for _, entry := range dict {
		for name, f := range hashFuncs {
			sum := f([]byte(entry))
			what := fmt.Sprintf("%s(%q)", name, entry)
			h := hex.EncodeToString(sum)
			for n := 16; n <= len(h); n += 8 {
				a.hexes[h[:n]] = what
			}
			if len(sum) >= 8 {
				a.words[binary.BigEndian.Uint64(sum)] = what
				a.words[binary.LittleEndian.Uint64(sum)] = what
			}
		}
	}
	return a
}

var (
	hexTokenRE    = regexp.MustCompile(`[0-9a-fA-F]{16,}`)
	base64TokenRE = regexp.MustCompile(`[A-Za-z0-9+/_-]{22,}={0,2}`)
)

// scan tries every hash-like value under dirs: hex runs, base64 runs decoded, and every
// aligned and unaligned 8-byte word of every file.
func (a *dictionaryAttack) scan(t *testing.T, dirs ...string) []string {
	t.Helper()
	var hits []string
	hit := func(path, what string) { hits = append(hits, what+" in "+path) }
	tryHex := func(path, tok string) {
		tok = strings.ToLower(tok)
		a.tokens++
		for n := 16; n <= len(tok); n += 8 {
			if what, ok := a.hexes[tok[:n]]; ok {
				hit(path, what)
				return
			}
		}
	}
	walkFiles(t, dirs, func(path string, b []byte) {
		for _, tok := range hexTokenRE.FindAll(b, -1) {
			tryHex(path, string(tok))
		}
		for _, tok := range base64TokenRE.FindAll(b, -1) {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
				if raw, err := enc.DecodeString(string(tok)); err == nil && len(raw) >= 8 {
					tryHex(path, hex.EncodeToString(raw))
					break
				}
			}
		}
		for i := 0; i+8 <= len(b); i++ {
			if what, ok := a.words[binary.LittleEndian.Uint64(b[i:])]; ok {
				hit(path, what+" (binary)")
			}
		}
	})
	return hits
}
