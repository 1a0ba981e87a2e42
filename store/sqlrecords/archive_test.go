package sqlrecords_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"erasure"
	"erasure/records"
	"erasure/store/sqlrecords"
)

func TestArchive_Manifests(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, db := openStore(t, c)
	_, tombs := loadSource(t, s, c, "alpha", 3000)
	rep, err := s.Archive(ctx, records.ArchiveOptions{Source: "alpha", DeletedBefore: c.Now(), BatchSize: 300, Actor: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	events, err := db.Events(ctx, records.EventArchived)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("OneAuditEventPerBatchWithItsManifest", func(t *testing.T) {
		if len(events) != rep.Batches || rep.Moved != int64(tombs) {
			t.Fatalf("%d events for %d batches moving %d of %d tombstones", len(events), rep.Batches, rep.Moved, tombs)
		}
		var count int64
		var sum records.Checksum
		for _, ev := range events {
			var m records.Manifest
			if err := json.Unmarshal(ev.Data, &m); err != nil {
				t.Fatal(err)
			}
			if ev.Actor != "ops" || m.From != records.Live || m.To != records.Deleted || m.Count == 0 || m.FirstHash != "" {
				t.Fatalf("event %+v, manifest %+v", ev, m)
			}
			count += m.Count
			sum += m.Checksum
		}
		if count != rep.Moved || sum != rep.Checksum {
			t.Fatalf("manifests add up to %d records (checksum %s); the archive moved %d (%s)", count, sum, rep.Moved, rep.Checksum)
		}
	})
	t.Run("VerifyChecksEveryManifest", func(t *testing.T) {
		v := mustVerify(t, s)
		if v.Sources[0].Moves != rep.Batches || v.Sources[0].MovesIntact != rep.Batches {
			t.Fatalf("verify checked %d of %d manifests, want %d", v.Sources[0].MovesIntact, v.Sources[0].Moves, rep.Batches)
		}
	})
	t.Run("VerifyDetectsTampering", func(t *testing.T) {
		if _, err := db.W.Exec(`UPDATE records_deleted SET payload = '{"forged":true}' WHERE id = (SELECT MIN(id) FROM records_deleted)`); err != nil {
			t.Fatal(err)
		}
		v, err := s.Verify(ctx, "alpha")
		if err != nil {
			t.Fatal(err)
		}
		if v.OK || len(v.Problems) < 2 {
			t.Fatalf("verify after tampering: %+v, want the ledger and a manifest to disagree", v)
		}
	})
	t.Run("VerifyDetectsDuplicates", func(t *testing.T) {
		if _, err := db.W.Exec(`INSERT INTO records_live SELECT * FROM records_deleted WHERE id = (SELECT MAX(id) FROM records_deleted)`); err != nil {
			t.Fatal(err)
		}
		v, err := s.Verify(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range v.Problems {
			found = found || p == "1 ids are in both live and deleted"
		}
		if !found {
			t.Fatalf("problems %q do not name the duplicate", v.Problems)
		}
	})
}

func TestArchive_Guard(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	// loadSource makes a third of the records tombstones.
	for _, tc := range []struct {
		name  string
		share float64
		force bool
		code  string
	}{
		{"BelowTheShareMoves", 0.5, false, ""},
		{"AboveTheShareIsRefused", 0.2, false, erasure.ECONFLICT},
		{"ForceLiftsTheGuard", 0.2, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := t.TempDir() + "/db"
			s, _ := openAt(t, path, c.Now, sqlrecords.Options{MaxArchiveShare: tc.share})
			loadSource(t, s, c, "alpha", 300)
			rep, err := s.Archive(ctx, records.ArchiveOptions{Source: "alpha", DeletedBefore: c.Now(), Force: tc.force})
			if erasure.ErrorCode(err) != tc.code {
				t.Fatalf("err %v, want code %q", err, tc.code)
			}
			want := int64(100)
			if tc.code != "" {
				want = 0
			}
			if rep.Moved != want {
				t.Fatalf("moved %d, want %d", rep.Moved, want)
			}
		})
	}
}

func TestSegments_CoverEveryIDOnce(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, _ := openStore(t, c)
	rng := rand.New(rand.NewPCG(3, 4))
	var recs []records.Record
	seen := map[string]bool{}
	for len(recs) < 5000 {
		// Skewed ids of mixed length and alphabet.
		id := fmt.Sprintf("%c%x", "aaaabz"[rng.IntN(6)], rng.Uint64()>>(rng.IntN(60)))
		if seen[id] {
			continue
		}
		seen[id] = true
		recs = append(recs, records.Record{ID: id, Version: 1, Payload: []byte(`{}`)})
	}
	if err := s.Import(ctx, "mixed", recs); err != nil {
		t.Fatal(err)
	}
	segs, total, err := s.Segments(ctx, records.Live, "mixed", 4)
	if err != nil {
		t.Fatal(err)
	}
	if total != 5000 || len(segs) < 2 {
		t.Fatalf("%d segments for %d records", len(segs), total)
	}
	got := map[string]int{}
	var sum int64
	for _, sg := range segs {
		n, err := s.Scan(ctx, records.Live, sg, "", 0, func(r *records.RawRecord) error {
			got[r.ID]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("segment %+v is empty", sg)
		}
		sum += n
	}
	if sum != 5000 || len(got) != 5000 {
		t.Fatalf("segments hold %d records, %d distinct; want 5000", sum, len(got))
	}
}
