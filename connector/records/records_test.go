package recordsconn_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"erasure"
	recordsconn "erasure/connector/records"
	"erasure/records"
	"erasure/registry"
	"erasure/store/sqlrecords"
	"erasure/store/sqlrecords/sqlrecordstest"
)

func registryYAML(block string) string {
	var b strings.Builder
	b.WriteString("version: 1\nidentifiers: [record_id, user_id]\ndatasets:\n")
	b.WriteString("  - name: catalogue.sierra\n    owner: catalogue-team\n    connector: records\n    records:\n")
	for _, line := range strings.Split(strings.TrimRight(block, "\n"), "\n") {
		b.WriteString("      " + line + "\n")
	}
	return b.String()
}

func noEnv(string) (string, bool) { return "", false }

func TestDriver_Build(t *testing.T) {
	t.Run("RefusesBadBlocksWithLines", func(t *testing.T) {
		for _, tc := range []struct {
			name, block string
			line        int
			want        string
		}{
			{"UnknownKey", "source: sierra\nmode: purge\nshred: true\n", 10, `unknown key "shred"`},
			{"BadSource", "source: \"Sierra/../x\"\n", 8, "source"},
			{"MissingSource", "mode: purge\n", 8, "source"},
			{"BadMode", "source: sierra\nmode: shred\n", 9, "mode must be tombstone or purge"},
			{"UndeclaredIdentifier", "source: sierra\nkey: { identifier: isbn }\n", 9, `"isbn" is not a declared identifier`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := registry.Parse("erasure.yaml", []byte(registryYAML(tc.block)), noEnv)
				var errs registry.Errors
				if !errors.As(err, &errs) {
					t.Fatalf("Parse error = %v, want line errors", err)
				}
				for _, e := range errs {
					if strings.Contains(e.Msg, tc.want) && e.Line == tc.line {
						return
					}
				}
				t.Errorf("no error on line %d containing %q in:\n%v", tc.line, tc.want, err)
			})
		}
	})
	t.Run("SetsKeysAndDefaults", func(t *testing.T) {
		cfg, err := registry.Parse("erasure.yaml", []byte(registryYAML("source: sierra\n")), noEnv)
		if err != nil {
			t.Fatal(err)
		}
		d := cfg.Datasets[0]
		c, ok := d.Conn.(*recordsconn.Connector)
		if !ok || c.Mode() != recordsconn.ModeTombstone || c.Source() != "sierra" || len(d.Keys) != 1 || d.Keys[0] != "record_id" || d.Method != erasure.MethodRealtime {
			t.Fatalf("dataset %+v, connector %#v", d, d.Conn)
		}
	})
}

func openStore(t *testing.T) *sqlrecords.Store {
	t.Helper()
	s, _ := sqlrecordstest.Open(t, filepath.Join(t.TempDir(), "erasure.db"), sqlrecords.Options{})
	return s
}

type conn interface {
	erasure.Eraser
	erasure.Verifier
	erasure.Checker
}

func TestConnector_EraseAndVerify(t *testing.T) {
	ctx := context.Background()
	subject := erasure.NewSubject(
		erasure.Identifier{Type: "record_id", Value: "b1"},
		erasure.Identifier{Type: "record_id", Value: "b2"},
		erasure.Identifier{Type: "record_id", Value: "never-seen"},
		erasure.Identifier{Type: "user_id", Value: "42"},
	)
	for _, tc := range []struct {
		mode        string
		wantPayload bool
	}{
		{"tombstone", true},
		{"purge", false},
	} {
		t.Run(strings.ToUpper(tc.mode[:1])+tc.mode[1:]+"Mode", func(t *testing.T) {
			cfg, err := registry.Parse("erasure.yaml", []byte(registryYAML("source: sierra\nmode: "+tc.mode+"\n")), noEnv)
			if err != nil {
				t.Fatal(err)
			}
			c := cfg.Datasets[0].Conn.(conn)
			if _, err := c.Erase(ctx, subject); err == nil || erasure.IsPermanent(err) {
				t.Fatalf("Erase before Bind = %v, want a transient error", err)
			}
			s := openStore(t)
			recordsconn.Bind(cfg.Datasets, s)
			if err := c.Check(ctx); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"b1", "b2", "b3"} {
				if _, _, err := s.Put(ctx, "sierra", records.Write{ID: id, Payload: []byte(`{"title":"x"}`)}); err != nil {
					t.Fatal(err)
				}
			}
			// b2 is already an archived tombstone.
			if _, _, err := s.Delete(ctx, "sierra", "b2", records.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Archive(ctx, records.ArchiveOptions{Source: "sierra", DeletedBefore: time.Now().Add(time.Hour), Force: true}); err != nil {
				t.Fatal(err)
			}
			if held, err := c.Holds(ctx, subject); err != nil || !held {
				t.Fatalf("Holds before erase = %v, %v; want true", held, err)
			}
			out, err := c.Erase(ctx, subject)
			want := int64(1) // b1; b2 was already a tombstone
			if tc.mode == "purge" {
				want = 2 // and b2's payload is dropped
			}
			if err != nil || out.Removed != want {
				t.Fatalf("Erase = %+v, %v; want %d removed", out, err, want)
			}
			if held, err := c.Holds(ctx, subject); err != nil || held {
				t.Fatalf("Holds after erase = %v, %v; want false", held, err)
			}
			again, err := c.Erase(ctx, subject)
			if err != nil || again.Removed != 0 {
				t.Fatalf("second Erase = %+v, %v; want nothing removed", again, err)
			}
			for _, id := range []string{"b1", "b2"} {
				rec, err := s.Get(ctx, "sierra", id)
				if err != nil || !rec.Deleted || (rec.Payload != nil) != tc.wantPayload {
					t.Fatalf("%s = %+v, %v; want a tombstone (payload kept: %v)", id, rec, err, tc.wantPayload)
				}
			}
			if rec, _ := s.Get(ctx, "sierra", "b3"); rec.Deleted {
				t.Fatal("b3 is not the subject's and was erased")
			}
			// An erased record (b1, and the tombstone b2 the erasure found) is not brought
			// back by a plain write: the writer of the catalogue must not undo an erasure.
			for _, id := range []string{"b1", "b2"} {
				if _, _, err := s.Put(ctx, "sierra", records.Write{ID: id, Payload: []byte(`{"title":"back"}`)}); erasure.ErrorCode(err) != erasure.ECONFLICT {
					t.Fatalf("plain write over erased %s: %v, want ECONFLICT", id, err)
				}
			}
			rep, err := s.Verify(ctx, "sierra")
			if err != nil || !rep.OK {
				t.Fatalf("verify: %+v, %v", rep, err)
			}
		})
	}
}

// TestConnector_Guard: the records an erase would change are counted before any is written.
func TestConnector_Guard(t *testing.T) {
	ctx := context.Background()
	cfg, err := registry.Parse("erasure.yaml", []byte(registryYAML("source: sierra\n")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Datasets[0].Conn.(conn)
	s := openStore(t)
	recordsconn.Bind(cfg.Datasets, s)
	var ids []erasure.Identifier
	for _, id := range []string{"r1", "r2", "r3", "r4"} {
		if _, _, err := s.Put(ctx, "sierra", records.Write{ID: id, Payload: []byte(`{"title":"x"}`)}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, erasure.Identifier{Type: "record_id", Value: id})
	}
	wide := erasure.NewSubject(ids...)
	guarded := erasure.ContextWithGuard(ctx, erasure.Guard{MaxRemoved: 3})
	_, err = c.Erase(guarded, wide)
	if g, ok := erasure.AsGuardError(err); !ok || g.Count != 4 || !strings.Contains(err.Error(), "4 records") || !strings.Contains(err.Error(), "max_removed 3") {
		t.Fatalf("err %v, want a guard error naming 4 records and max_removed 3", err)
	}
	for _, id := range ids {
		if rec, err := s.Get(ctx, "sierra", id.Value); err != nil || rec.Deleted {
			t.Fatalf("%s after the refused erase: %+v, %v", id.Value, rec, err)
		}
	}
	if out, err := c.Erase(guarded, erasure.NewSubject(ids[:2]...)); err != nil || out.Removed != 2 {
		t.Fatalf("guarded erase of 2: %+v, %v", out, err)
	}
	if out, err := c.Erase(ctx, wide); err != nil || out.Removed != 2 {
		t.Fatalf("forced erase: %+v, %v; want the 2 records left", out, err)
	}
}
