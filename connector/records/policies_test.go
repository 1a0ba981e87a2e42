package recordsconn_test

import (
	"context"
	"errors"
	"fmt"
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

// TestConnector_Retention: the payloads of tombstones deleted before the cutoff are purged
// (in both partitions), nothing else changes, and the store still verifies.
func TestConnector_Retention(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s, _ := sqlrecordstest.Open(t, filepath.Join(t.TempDir(), "erasure.db"), sqlrecords.Options{Now: func() time.Time { return now }})
	cfg, err := registry.Parse("erasure.yaml", []byte(registryYAML("source: sierra\n")+"    retention: { older_than: 365d }\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	recordsconn.Bind(cfg.Datasets, s)
	r := cfg.Datasets[0].Conn.(erasure.Retainer)
	for i := 0; i < 60; i++ {
		if _, _, err := s.Put(ctx, "sierra", records.Write{ID: fmt.Sprintf("b%02d", i), Payload: []byte(`{"title":"x"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	// b00..b19 deleted two years ago, b20..b39 last month, b40..b59 live; b00..b09 archived.
	for i := 0; i < 40; i++ {
		if i == 20 {
			now = now.AddDate(2, 0, 0)
		}
		if _, _, err := s.Delete(ctx, "sierra", fmt.Sprintf("b%02d", i), records.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if i == 9 {
			if _, err := s.Archive(ctx, records.ArchiveOptions{Source: "sierra", DeletedBefore: now.Add(time.Hour), Force: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	now = now.AddDate(0, 1, 0)
	cutoff := now.AddDate(-1, 0, 0)
	res, err := r.Expire(ctx, cutoff, func(int64) error { return erasure.ErrDryRun })
	if !errors.Is(err, erasure.ErrDryRun) || res.Expired != 20 || res.Removed != 0 {
		t.Fatalf("dry run %+v, %v", res, err)
	}
	res, err = r.Expire(ctx, cutoff, func(int64) error { return nil })
	if err != nil || res.Expired != 20 || res.Removed != 20 {
		t.Fatalf("Expire %+v, %v", res, err)
	}
	for i := 0; i < 60; i++ {
		rec, err := s.Get(ctx, "sierra", fmt.Sprintf("b%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		purged := rec.Payload == nil
		if purged != (i < 20) || rec.Deleted != (i < 40) {
			t.Fatalf("b%02d: deleted %v, payload purged %v", i, rec.Deleted, purged)
		}
	}
	if rep, err := s.Verify(ctx, "sierra"); err != nil || !rep.OK {
		t.Fatalf("verify %+v, %v", rep, err)
	}
	if again, err := r.Expire(ctx, cutoff, func(int64) error { return nil }); err != nil || again.Expired != 0 {
		t.Fatalf("second run %+v, %v", again, err)
	}
	t.Run("AColumnIsRefused", func(t *testing.T) {
		_, err := registry.Parse("erasure.yaml", []byte(registryYAML("source: sierra\n")+"    retention: { older_than: 365d, column: deleted_at }\n"), noEnv)
		if err == nil || !strings.Contains(err.Error(), "retention.column does not apply to records") {
			t.Fatalf("err %v", err)
		}
	})
}

func TestConnector_Replay(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	cfg, err := registry.Parse("erasure.yaml", []byte(registryYAML("source: sierra\nmode: purge\n")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	recordsconn.Bind(cfg.Datasets, s)
	rp := cfg.Datasets[0].Conn.(erasure.Replayer)
	for i := 0; i < 50; i++ {
		if _, _, err := s.Put(ctx, "sierra", records.Write{ID: fmt.Sprintf("b%02d", i), Payload: []byte(`{"title":"x"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	erased := map[string]bool{"b03": true, "b17": true, "b44": true}
	dry, err := rp.Replay(ctx, func(id string) bool { return erased[id] }, true, nil)
	if err != nil || dry.Scanned != 50 || dry.Matched != 3 || dry.Removed != 0 {
		t.Fatalf("dry run %+v, %v", dry, err)
	}
	res, err := rp.Replay(ctx, func(id string) bool { return erased[id] }, false, nil)
	if err != nil || res.Removed != 3 {
		t.Fatalf("%+v, %v", res, err)
	}
	for i := 0; i < 50; i++ {
		id := fmt.Sprintf("b%02d", i)
		rec, _ := s.Get(ctx, "sierra", id)
		if rec.Deleted != erased[id] || (rec.Payload == nil) != erased[id] {
			t.Fatalf("%s: %+v", id, rec)
		}
	}
}
