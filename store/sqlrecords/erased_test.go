package sqlrecords_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/internal/testenv"
	"erasure/records"
	"erasure/store/migrate"
	"erasure/store/sqlrecords"
)

// keyedStore is a record store with a Hasher and a way to read the audit events it wrote.
type keyedStore struct {
	*sqlrecords.Store
	hasher *audit.Hasher
	events func(t *testing.T) []erasure.AuditEvent
}

// eachDialect runs f on a record store with a Hasher, on SQLite and on PostgreSQL.
func eachDialect(t *testing.T, f func(t *testing.T, s keyedStore, c *clock)) {
	h, err := audit.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("SQLite", func(t *testing.T) {
		c := newClock()
		s, db := openAt(t, filepath.Join(t.TempDir(), "erasure.db"), c.Now, sqlrecords.Options{Hasher: h})
		f(t, keyedStore{s, h, func(t *testing.T) []erasure.AuditEvent {
			return readEvents(t, db.R, `SELECT seq, actor, type, data FROM test_audit ORDER BY seq`)
		}}, c)
	})
	t.Run("Postgres", func(t *testing.T) {
		c := newClock()
		db, err := sql.Open("pgx", testenv.PostgresSchema(t, "records"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.Exec(`CREATE TABLE test_audit (seq BIGINT PRIMARY KEY, actor TEXT NOT NULL, type TEXT NOT NULL, data TEXT)`); err != nil {
			t.Fatal(err)
		}
		appendAudit := func(ctx context.Context, tx *sql.Tx, ev *erasure.AuditEvent) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO test_audit (seq, actor, type, data) SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3 FROM test_audit`, ev.Actor, ev.Type, string(ev.Data))
			return err
		}
		s, err := sqlrecords.Open(context.Background(), db, sqlrecords.Options{AppendAudit: appendAudit, Now: c.Now, Dialect: migrate.Postgres, Hasher: h})
		if err != nil {
			t.Fatal(err)
		}
		f(t, keyedStore{s, h, func(t *testing.T) []erasure.AuditEvent {
			return readEvents(t, db, `SELECT seq, actor, type, data FROM test_audit ORDER BY seq`)
		}}, c)
	})
}

func readEvents(t *testing.T, db *sql.DB, query string) []erasure.AuditEvent {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []erasure.AuditEvent
	for rows.Next() {
		var ev erasure.AuditEvent
		var data string
		if err := rows.Scan(&ev.Seq, &ev.Actor, &ev.Type, &data); err != nil {
			t.Fatal(err)
		}
		ev.Data = json.RawMessage(data)
		out = append(out, ev)
	}
	return out
}

func put(t *testing.T, s records.Service, w records.Write) (*records.Record, string, error) {
	t.Helper()
	return s.Put(context.Background(), "sierra", w)
}

func TestStore_ErasedRecordsStayErased(t *testing.T) {
	eachDialect(t, func(t *testing.T, s keyedStore, c *clock) {
		ctx := context.Background()
		for _, id := range []string{"b1", "b2", "b3", "b4"} {
			if _, _, err := put(t, s, records.Write{ID: id, Payload: json.RawMessage(`{"title":"x"}`)}); err != nil {
				t.Fatal(err)
			}
		}
		// b1 erased (tombstone), b2 erased (purge), b3 deleted by hand, b4 deleted by hand and
		// then erased.
		if _, _, err := s.Delete(ctx, "sierra", "b1", records.DeleteOptions{Reason: "erasure request", ErasedAs: "record_id"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Delete(ctx, "sierra", "b2", records.DeleteOptions{Reason: "erasure request", Purge: true, ErasedAs: "record_id"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Delete(ctx, "sierra", "b3", records.DeleteOptions{Reason: "withdrawn"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Delete(ctx, "sierra", "b4", records.DeleteOptions{Reason: "withdrawn"}); err != nil {
			t.Fatal(err)
		}
		if _, st, err := s.Delete(ctx, "sierra", "b4", records.DeleteOptions{Reason: "erasure request", ErasedAs: "record_id"}); err != nil || st != records.StatusUnchanged {
			t.Fatalf("erasing a tombstone: %s %v", st, err)
		}
		c.Advance(time.Second)

		t.Run("APlainWriteIsRefused", func(t *testing.T) {
			for _, id := range []string{"b1", "b2", "b4"} {
				_, _, err := put(t, s, records.Write{ID: id, Payload: json.RawMessage(`{"title":"back"}`)})
				if erasure.ErrorCode(err) != erasure.ECONFLICT || !strings.Contains(err.Error(), "erasure") {
					t.Fatalf("%s: a plain write over an erased record: %v, want ECONFLICT", id, err)
				}
				rec, err := s.Get(ctx, "sierra", id)
				if err != nil || !rec.Deleted {
					t.Fatalf("%s after the refused write: %+v %v", id, rec, err)
				}
			}
		})
		t.Run("ABatchRefusesOnlyTheErased", func(t *testing.T) {
			res, err := s.WriteBatch(ctx, "sierra", []records.Write{
				{ID: "b1", Payload: json.RawMessage(`{"title":"back"}`)},
				{ID: "b3", Payload: json.RawMessage(`{"title":"back"}`)},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Err == nil || res[0].Err.Code != erasure.ECONFLICT || res[1].Err != nil || res[1].Status != records.StatusUpdated {
				t.Fatalf("results %+v %+v", res[0], res[1])
			}
		})
		t.Run("AnArchivedErasedRecordStaysErased", func(t *testing.T) {
			if _, err := s.Archive(ctx, records.ArchiveOptions{Source: "sierra", DeletedBefore: c.Now(), Force: true, Actor: "ops"}); err != nil {
				t.Fatal(err)
			}
			if rec, err := s.Get(ctx, "sierra", "b2"); err != nil || rec.Partition != records.Deleted {
				t.Fatalf("b2 after the archive: %+v %v", rec, err)
			}
			if _, _, err := put(t, s, records.Write{ID: "b2", Payload: json.RawMessage(`{"title":"back"}`)}); erasure.ErrorCode(err) != erasure.ECONFLICT {
				t.Fatalf("a plain write over an archived erased record: %v", err)
			}
		})
		t.Run("AForcedWriteBringsItBackAndIsAudited", func(t *testing.T) {
			before := len(s.events(t))
			rec, st, err := put(t, s, records.Write{ID: "b1", Payload: json.RawMessage(`{"title":"back"}`), Force: true, Actor: "operator"})
			if err != nil || st != records.StatusUpdated || rec.Deleted {
				t.Fatalf("forced write: %+v %s %v", rec, st, err)
			}
			evs := s.events(t)[before:]
			if len(evs) != 1 || evs[0].Type != records.EventResurrected || evs[0].Actor != "operator" {
				t.Fatalf("events after the forced write: %+v", evs)
			}
			if strings.Contains(string(evs[0].Data), `"b1"`) || !strings.Contains(string(evs[0].Data), s.hasher.Identifier(erasure.Identifier{Type: "record_id", Value: "b1"})) {
				t.Fatalf("the event must name the record by its identifier's keyed hash, not in clear: %s", evs[0].Data)
			}
			// Brought back, it is a record like any other: the next write needs no force.
			if _, _, err := put(t, s, records.Write{ID: "b1", Payload: json.RawMessage(`{"title":"again"}`)}); err != nil {
				t.Fatal(err)
			}
			mustVerify(t, s.Store)
		})
	})
}

func TestStore_ManifestsNameNoRecordID(t *testing.T) {
	eachDialect(t, func(t *testing.T, s keyedStore, c *clock) {
		ctx := context.Background()
		ids := []string{"alice@example.com", "bob@example.com", "carol@example.com"}
		for _, id := range ids {
			if _, _, err := put(t, s, records.Write{ID: id, Payload: json.RawMessage(`{}`)}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Delete(ctx, "sierra", id, records.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		c.Advance(time.Second)
		rep, err := s.Archive(ctx, records.ArchiveOptions{Source: "sierra", DeletedBefore: c.Now(), Force: true, BatchSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Restore(ctx, records.RestoreOptions{Source: "sierra", IDs: ids[:1]}); err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(rep)
		var manifests int
		for _, ev := range s.events(t) {
			for _, id := range ids {
				if strings.Contains(string(ev.Data), strings.Split(id, "@")[0]) {
					t.Fatalf("event %s holds a record id in clear: %s", ev.Type, ev.Data)
				}
			}
			if ev.Type == records.EventArchived || ev.Type == records.EventRestored {
				var m records.Manifest
				if err := json.Unmarshal(ev.Data, &m); err != nil {
					t.Fatal(err)
				}
				if m.FirstHash == "" || m.LastHash == "" {
					t.Fatalf("manifest without its keyed hashes: %s", ev.Data)
				}
				manifests++
			}
		}
		if manifests != 3 {
			t.Fatalf("%d manifests, want 2 archive batches and 1 restore", manifests)
		}
		for _, id := range ids {
			if strings.Contains(string(out), id) {
				t.Fatalf("the archive report holds a record id: %s", out)
			}
		}
		// The first manifest's hash is the keyed hash of the first id it moved.
		for _, ev := range s.events(t) {
			if ev.Type == records.EventArchived {
				var m records.Manifest
				json.Unmarshal(ev.Data, &m)
				if m.FirstHash != records.RecordHash(s.hasher, "sierra", ids[0]) {
					t.Fatalf("first hash %s is not the keyed hash of %s", m.FirstHash, ids[0])
				}
				break
			}
		}
	})
}

func TestStore_KeysTheManifestsOfOlderMoves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "erasure.db")
	c := newClock()
	_, db := openAt(t, path, c.Now, sqlrecords.Options{})
	// A manifest as builds before keyed manifests wrote it.
	if _, err := db.W.Exec(`INSERT INTO records_moves (id, source, kind, target, count, checksum, first_id, last_id, at, actor) VALUES (1, 'sierra', 'archive', 'deleted', 2, 0, 'alice@example.com', 'bob@example.com', 0, 'ops')`); err != nil {
		t.Fatal(err)
	}
	h, _ := audit.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	openAt(t, path, c.Now, sqlrecords.Options{Hasher: h})
	var first, last string
	if err := db.R.QueryRow(`SELECT first_id, last_id FROM records_moves WHERE id = 1`).Scan(&first, &last); err != nil {
		t.Fatal(err)
	}
	if first != records.RecordHash(h, "sierra", "alice@example.com") || last != records.RecordHash(h, "sierra", "bob@example.com") {
		t.Fatalf("the older manifest holds %q, %q; want the keyed hashes of its ids", first, last)
	}
}
