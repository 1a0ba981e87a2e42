package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/store/sqlite"
)

// The tamper suite: an attacker with the data dir in hand (the database and the audit key
// generated into it) stops the server, drops the append-only triggers, rewrites the audit
// trail so that its chain verifies again under the key, removes the checkpoints the store
// kept, puts the triggers back and starts the server. `erasure audit verify` alone cannot see
// it (the chain is sound); with the head printed before (--expect-head) or a checkpoint kept
// elsewhere (--checkpoint), every rewrite is found.

// trail is the audit chain of a data dir as an attacker reads it: blocks of events.
type trail struct {
	blocks [][]erasure.AuditEvent
	at     []int64 // each block's time, unix ms
}

func readTrail(t *testing.T, db *sql.DB) *trail {
	t.Helper()
	rows, err := db.Query(`SELECT seq, first_event, events, at, body, prev_hash, hash FROM audit_blocks ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	tr := &trail{}
	for rows.Next() {
		var b erasure.AuditBlock
		var at int64
		var body string
		if err := rows.Scan(&b.Seq, &b.FirstEvent, &b.Events, &at, &body, &b.PrevHash, &b.Hash); err != nil {
			t.Fatal(err)
		}
		b.Body = []byte(body)
		evs, err := audit.Events(&b)
		if err != nil {
			t.Fatal(err)
		}
		tr.blocks = append(tr.blocks, evs)
		tr.at = append(tr.at, at)
	}
	return tr
}

// rewrite writes tr back as a chain that verifies under the data dir's key: blocks renumbered
// from 1, events from 1, every block sealed again, the index and the head made to agree, and
// the store's own checkpoints removed. The triggers are dropped for the rewrite and put back
// as they were.
func rewrite(t *testing.T, db *sql.DB, dataDir string, tr *trail, keepCheckpoints bool) {
	t.Helper()
	key, err := audit.LoadKey("", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := audit.NewHasher(key)
	chain := h.Chain()
	var triggers []string
	rows, err := db.Query(`SELECT sql FROM sqlite_master WHERE type = 'trigger'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		triggers = append(triggers, s)
	}
	rows.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, name := range []string{"audit_blocks_no_update", "audit_blocks_no_delete", "audit_index_no_update", "audit_index_no_delete", "audit_checkpoints_no_delete"} {
		exec(`DROP TRIGGER ` + name)
	}
	exec(`DELETE FROM audit_blocks`)
	exec(`DELETE FROM audit_index`)
	if !keepCheckpoints {
		exec(`DELETE FROM audit_checkpoints`)
	}
	prev := audit.Genesis
	first := int64(1)
	var seq int64
	for i, evs := range tr.blocks {
		if len(evs) == 0 {
			continue
		}
		seq++
		b := audit.NewBlock(seq, first, time.UnixMilli(tr.at[i]).UTC(), evs)
		chain.Seal(prev, &b)
		exec(`INSERT INTO audit_blocks (seq, first_event, events, at, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			b.Seq, b.FirstEvent, b.Events, tr.at[i], string(b.Body), b.PrevHash, b.Hash)
		reqs := map[string]bool{}
		for _, ev := range evs {
			if ev.RequestID != "" && !reqs[ev.RequestID] {
				reqs[ev.RequestID] = true
				exec(`INSERT INTO audit_index (request_id, block) VALUES (?, ?)`, ev.RequestID, b.Seq)
			}
		}
		prev, first = b.Hash, first+int64(len(evs))
	}
	exec(`UPDATE audit_head SET block = ?, events = ?, hash = ?`, seq, first-1, prev)
	for _, s := range triggers {
		name := regexp.MustCompile(`(?i)^CREATE TRIGGER (\w+)`).FindStringSubmatch(s)[1]
		exec(`DROP TRIGGER IF EXISTS ` + name)
		exec(s)
	}
}

func TestAuditTamper_FoundWithAnExpectedHeadOrACheckpoint(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, tr *trail, victim string)
	}{
		{"EditAndRecompute", func(t *testing.T, tr *trail, victim string) {
			// Make a cancelled request look completed by someone else.
			for _, evs := range tr.blocks {
				for i := range evs {
					if evs[i].RequestID == victim && evs[i].Type == erasure.EventRequestCancelled {
						evs[i].Type, evs[i].Actor = erasure.EventRequestCompleted, "erasure"
						return
					}
				}
			}
			t.Fatal("no event to edit")
		}},
		{"DeleteAndRenumber", func(t *testing.T, tr *trail, victim string) {
			// Remove every event of one request, as if it had never been submitted.
			n := 0
			for i, evs := range tr.blocks {
				kept := evs[:0]
				for _, ev := range evs {
					if ev.RequestID != victim {
						kept = append(kept, ev)
					} else {
						n++
					}
				}
				tr.blocks[i] = kept
			}
			if n == 0 {
				t.Fatal("no event to delete")
			}
		}},
		{"Truncate", func(t *testing.T, tr *trail, victim string) {
			// Cut the tail: the last requests never happened.
			tr.blocks = tr.blocks[:len(tr.blocks)-3]
		}},
		{"Reorder", func(t *testing.T, tr *trail, victim string) {
			// Swap two blocks: events happen in another order.
			i, j := 1, len(tr.blocks)-2
			tr.blocks[i], tr.blocks[j] = tr.blocks[j], tr.blocks[i]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTamperEnv(t)
			head, cpFile := env.anchor(t)
			env.stop()
			db := env.openDB(t)
			tr := readTrail(t, db)
			tc.tamper(t, tr, env.victim)
			rewrite(t, db, env.data, tr, false)
			db.Close()
			env.start(t)

			// The chain verifies under its key: the rewrite is invisible without an anchor.
			if code, out, errOut := run(t, "audit", "verify"); code != 0 {
				t.Fatalf("the rewritten trail should still verify without an anchor: exit %d %q %q", code, out, errOut)
			}
			for _, args := range [][]string{{"--expect-head", head}, {"--checkpoint", cpFile}} {
				code, out, errOut := run(t, append([]string{"audit", "verify"}, args...)...)
				if code != 1 || out != "" || !strings.Contains(errOut, "audit trail BROKEN") {
					t.Fatalf("audit verify %v after %s: exit %d %q %q; want exit 1 BROKEN", args, tc.name, code, out, errOut)
				}
			}
		})
	}
	t.Run("AnUntouchedTrailPassesItsAnchors", func(t *testing.T) {
		env := newTamperEnv(t)
		head, cpFile := env.anchor(t)
		env.stop()
		env.start(t)
		run(t, "submit", "user_id=99", "--wait", "--timeout", "1m") // the trail grows past its anchors
		code, out, errOut := run(t, "audit", "verify", "--expect-head", head, "--checkpoint", cpFile)
		if code != 0 || !strings.Contains(out, "passes through 2") {
			t.Fatalf("exit %d %q %q", code, out, errOut)
		}
	})
	t.Run("ACheckpointKeptInTheStoreFindsACarelessRewrite", func(t *testing.T) {
		env := newTamperEnv(t)
		env.anchor(t)
		env.stop()
		db := env.openDB(t)
		tr := readTrail(t, db)
		tr.blocks = tr.blocks[:len(tr.blocks)-1]
		rewrite(t, db, env.data, tr, true) // the attacker forgot audit_checkpoints
		db.Close()
		env.start(t)
		if code, _, errOut := run(t, "audit", "verify"); code != 1 || !strings.Contains(errOut, "cut short") {
			t.Fatalf("exit %d %q; want the store's own checkpoint to find the truncation", code, errOut)
		}
	})
	t.Run("AForgedCheckpointIsRefused", func(t *testing.T) {
		env := newTamperEnv(t)
		_, cpFile := env.anchor(t)
		data, _ := os.ReadFile(cpFile)
		forged := regexp.MustCompile(`"block": \d+`).ReplaceAll(data, []byte(`"block": 1`))
		os.WriteFile(cpFile, forged, 0o600)
		if code, _, errOut := run(t, "audit", "verify", "--checkpoint", cpFile); code != 2 || !strings.Contains(errOut, "signature") {
			t.Fatalf("exit %d %q; want the forged checkpoint refused", code, errOut)
		}
	})
	t.Run("ACheckpointOfAnotherKeyIsRefused", func(t *testing.T) {
		env := newTamperEnv(t)
		_, cpFile := env.anchor(t)
		env.stop()
		// The attacker replaces the signing key to sign checkpoints of a rewritten trail.
		os.Remove(filepath.Join(env.data, audit.SigningKeyFile))
		env.start(t)
		if code, _, errOut := run(t, "audit", "verify", "--checkpoint", cpFile); code != 1 || !strings.Contains(errOut, "signing key was replaced") {
			t.Fatalf("exit %d %q; want the checkpoint of the old key to be found out", code, errOut)
		}
	})
}

// tamperEnv is a server over a real data dir with a few ended requests.
type tamperEnv struct {
	cfg, data, dir string
	victim         string
	m              *Main
}

func newTamperEnv(t *testing.T) *tamperEnv {
	t.Helper()
	dir := t.TempDir()
	e := &tamperEnv{dir: dir, data: filepath.Join(dir, "data"), cfg: filepath.Join(dir, "erasure.yaml")}
	if err := os.WriteFile(e.cfg, []byte(fmt.Sprintf(pipelineConfig, e.data)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ERASURE_PIPELINE_TOKEN", "admin-secret-0123456789")
	t.Setenv("ERASURE_TOKEN", "admin-secret-0123456789")
	e.start(t)
	for i := 1; i <= 6; i++ {
		if i == 3 {
			code, out, _ := run(t, "submit", "user_id=13") // fails for good: stays open, then cancelled
			e.victim = strings.TrimSpace(out)
			if code != 0 {
				t.Fatal("submit")
			}
			waitUntil(t, e.victim, erasure.RequestFailed)
			if code, _, errOut := run(t, "cancel", e.victim); code != 0 {
				t.Fatalf("cancel: %s", errOut)
			}
			continue
		}
		if code, _, errOut := run(t, "submit", fmt.Sprintf("user_id=%d", i), "--wait", "--timeout", "1m"); code != 0 {
			t.Fatalf("submit: %s", errOut)
		}
	}
	return e
}

func waitUntil(t *testing.T, id string, want erasure.RequestStatus) {
	t.Helper()
	for i := 0; i < 500; i++ {
		_, out, _ := run(t, "status", id)
		if strings.Contains(out, string(want)) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("request %s never %s", id, want)
}

func (e *tamperEnv) start(t *testing.T) {
	t.Helper()
	e.m = startMain(t, e.cfg)
	t.Setenv("ERASURE_URL", e.m.URL())
}

func (e *tamperEnv) stop() { e.m.Close() }

// anchor prints the head (as the operator would note it) and exports a checkpoint to a file
// away from the data dir.
func (e *tamperEnv) anchor(t *testing.T) (head, file string) {
	t.Helper()
	code, out, errOut := run(t, "audit", "verify")
	m := regexp.MustCompile(`head (\d+:[0-9a-f]{64})\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("audit verify: exit %d %q %q", code, out, errOut)
	}
	file = filepath.Join(e.dir, "elsewhere", "checkpoint.json")
	os.MkdirAll(filepath.Dir(file), 0o700)
	if code, out, errOut := run(t, "audit", "checkpoint", "--out", file); code != 0 || !strings.Contains(out, "written to") {
		t.Fatalf("audit checkpoint: exit %d %q %q", code, out, errOut)
	}
	return m[1], file
}

func (e *tamperEnv) openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", sqlite.DSN(filepath.Join(e.data, "erasure.db"), "FULL"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}
