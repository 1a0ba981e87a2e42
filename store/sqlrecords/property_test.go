package sqlrecords_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"erasure"
	"erasure/records"
	"erasure/store/sqlrecords"
)

// modelRecord is what the model believes about one (source, id).
type modelRecord struct {
	version   int64
	payload   string // "" once purged
	deleted   bool
	deletedAt time.Time
	reason    string
	partition string
}

type modelKey struct{ source, id string }

// TestStore_Property runs random sequences of writes, deletes, archives, restores and
// reconciles against the store and a model. After every step the union of live and deleted
// must equal the model's records in count and checksum, every GET must answer as the model
// says (200, 410 or 404, with the model's version, payload, deletion and partition), and
// verify must pass.
func TestStore_Property(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprintf("Seed%d", seed), func(t *testing.T) {
			c := newClock()
			s, _ := openStore(t, c)
			runProperty(t, s, c, seed, 250)
		})
	}
}

func runProperty(t *testing.T, s *sqlrecords.Store, c *clock, seed uint64, steps int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	sources := []string{"alpha", "beta"}
	var ids []string
	for i := range 24 {
		ids = append(ids, fmt.Sprintf("r%02d", i))
	}
	payloads := []string{`{"a":1}`, `{"a":2}`, `{"b":[1,2],"c":"x"}`}
	model := map[modelKey]*modelRecord{}
	for step := range steps {
		c.Advance(24 * time.Hour)
		now := c.Now().Truncate(time.Millisecond)
		src := sources[rng.IntN(len(sources))]
		id := ids[rng.IntN(len(ids))]
		k := modelKey{src, id}
		cur := model[k]
		var desc string
		switch op := rng.IntN(10); {
		case op < 4: // put
			var ver int64
			if cur != nil {
				ver = []int64{0, cur.version + 1, cur.version, cur.version - 1, cur.version + 3}[rng.IntN(5)]
			} else {
				ver = []int64{0, 1, 4}[rng.IntN(3)]
			}
			p := payloads[rng.IntN(len(payloads))]
			desc = fmt.Sprintf("put %s/%s v%d %s", src, id, ver, p)
			_, status, err := s.Put(ctx, src, records.Write{ID: id, Version: ver, Payload: []byte(p)})
			wantStatus, wantCode := "", ""
			switch {
			case cur == nil:
				wantStatus = records.StatusCreated
				model[k] = &modelRecord{version: max(ver, 1), payload: p, partition: records.Live}
				if ver == 0 {
					model[k].version = 1
				}
			case ver == cur.version && !cur.deleted && cur.payload == p:
				wantStatus = records.StatusUnchanged
			case ver != 0 && ver <= cur.version:
				wantCode = erasure.ECONFLICT
			default:
				wantStatus = records.StatusUpdated
				nv := cur.version + 1
				if ver != 0 {
					nv = ver
				}
				model[k] = &modelRecord{version: nv, payload: p, partition: records.Live}
			}
			checkOutcome(t, step, desc, status, err, wantStatus, wantCode)
		case op < 6: // delete
			purge := rng.IntN(3) == 0
			reason := []string{"", "withdrawn"}[rng.IntN(2)]
			desc = fmt.Sprintf("delete %s/%s purge=%v", src, id, purge)
			_, status, err := s.Delete(ctx, src, id, records.DeleteOptions{Purge: purge, Reason: reason})
			wantStatus, wantCode := "", ""
			switch {
			case cur == nil:
				wantCode = erasure.ENOTFOUND
			case cur.deleted && (!purge || cur.payload == ""):
				wantStatus = records.StatusUnchanged
			case cur.deleted:
				wantStatus = records.StatusDeleted
				cur.version++
				cur.payload = ""
			default:
				wantStatus = records.StatusDeleted
				cur.version++
				cur.deleted, cur.deletedAt = true, now
				cur.reason = reason
				if reason == "" {
					cur.reason = "deleted"
				}
				if purge {
					cur.payload = ""
				}
			}
			checkOutcome(t, step, desc, status, err, wantStatus, wantCode)
		case op < 7: // archive
			before := now.Add(-time.Duration(rng.IntN(20)) * 24 * time.Hour)
			compact := rng.IntN(4) == 0
			desc = fmt.Sprintf("archive %s before %s compact=%v", src, before.Format("2006-01-02"), compact)
			rep, err := s.Archive(ctx, records.ArchiveOptions{Source: src, DeletedBefore: before, Force: true, BatchSize: 1 + rng.IntN(4), Compact: compact})
			if err != nil {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
			var want int64
			for mk, m := range model {
				if mk.source == src && m.partition == records.Live && m.deleted && m.deletedAt.Before(before) {
					m.partition = records.Deleted
					want++
				}
			}
			if rep.Moved != want {
				t.Fatalf("step %d %s: moved %d, model says %d", step, desc, rep.Moved, want)
			}
		case op < 8: // restore
			if rng.IntN(2) == 0 {
				pick := []string{id, ids[rng.IntN(len(ids))], ids[rng.IntN(len(ids))]}
				desc = fmt.Sprintf("restore %s %v", src, pick)
				rep, err := s.Restore(ctx, records.RestoreOptions{Source: src, IDs: pick, BatchSize: 2})
				if err != nil {
					t.Fatalf("step %d %s: %v", step, desc, err)
				}
				var moved, live, unknown int64
				seen := map[string]bool{}
				for _, pid := range pick {
					if seen[pid] {
						continue
					}
					seen[pid] = true
					switch m := model[modelKey{src, pid}]; {
					case m == nil:
						unknown++
					case m.partition == records.Deleted:
						m.partition = records.Live
						moved++
					default:
						live++
					}
				}
				if rep.Moved != moved || rep.AlreadyLive != live || rep.NotFound != unknown {
					t.Fatalf("step %d %s: moved %d, live %d, unknown %d; model says %d, %d, %d", step, desc, rep.Moved, rep.AlreadyLive, rep.NotFound, moved, live, unknown)
				}
			} else {
				after := now.Add(-time.Duration(rng.IntN(60)) * 24 * time.Hour)
				desc = fmt.Sprintf("restore %s deleted after %s", src, after.Format("2006-01-02"))
				rep, err := s.Restore(ctx, records.RestoreOptions{Source: src, DeletedAfter: after, BatchSize: 3})
				if err != nil {
					t.Fatalf("step %d %s: %v", step, desc, err)
				}
				var want int64
				for mk, m := range model {
					if mk.source == src && m.partition == records.Deleted && !m.deletedAt.Before(after) {
						m.partition = records.Live
						want++
					}
				}
				if rep.Moved != want {
					t.Fatalf("step %d %s: moved %d, model says %d", step, desc, rep.Moved, want)
				}
			}
		default: // reconcile
			present := map[string]bool{}
			for _, pid := range ids {
				if rng.IntN(6) != 0 {
					present[pid] = true
				}
			}
			desc = fmt.Sprintf("reconcile %s with %d present", src, len(present))
			rep, err := s.Reconcile(ctx, records.ReconcileOptions{Source: src, Present: present, Force: true, BatchSize: 2})
			if err != nil {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
			var want int64
			for mk, m := range model {
				if mk.source == src && m.partition == records.Live && !m.deleted && !present[mk.id] {
					m.version++
					m.deleted, m.deletedAt, m.reason = true, now, "absent at source"
					want++
				}
			}
			if rep.Moved != want {
				t.Fatalf("step %d %s: tombstoned %d, model says %d", step, desc, rep.Moved, want)
			}
		}
		checkModel(t, step, desc, s, model, sources, ids)
	}
}

func checkOutcome(t *testing.T, step int, desc, status string, err error, wantStatus, wantCode string) {
	t.Helper()
	if wantCode != "" {
		if erasure.ErrorCode(err) != wantCode {
			t.Fatalf("step %d %s: got status %q err %v, want error %s", step, desc, status, err, wantCode)
		}
		return
	}
	if err != nil || status != wantStatus {
		t.Fatalf("step %d %s: got status %q err %v, want %s", step, desc, status, err, wantStatus)
	}
}

func checkModel(t *testing.T, step int, desc string, s *sqlrecords.Store, model map[modelKey]*modelRecord, sources, ids []string) {
	t.Helper()
	ctx := context.Background()
	var sum records.Checksum
	for _, src := range sources {
		for _, id := range ids {
			m := model[modelKey{src, id}]
			rec, err := s.Get(ctx, src, id)
			if m == nil {
				if erasure.ErrorCode(err) != erasure.ENOTFOUND {
					t.Fatalf("step %d after %s: GET %s/%s: got %v %v, want 404", step, desc, src, id, rec, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("step %d after %s: GET %s/%s: %v", step, desc, src, id, err)
			}
			var payload []byte
			if m.payload != "" {
				payload = []byte(m.payload)
			}
			var at *time.Time
			if m.deleted {
				at = &m.deletedAt
			}
			sum += records.RecordChecksum(src, id, m.version, payload, at, m.reason)
			got := fmt.Sprintf("v%d deleted=%v payload=%s reason=%q in %s", rec.Version, rec.Deleted, rec.Payload, rec.Reason, rec.Partition)
			want := fmt.Sprintf("v%d deleted=%v payload=%s reason=%q in %s", m.version, m.deleted, payload, m.reason, m.partition)
			if got != want || !bytes.Equal(rec.Payload, payload) || (m.deleted && !rec.DeletedAt.Equal(m.deletedAt)) {
				t.Fatalf("step %d after %s: GET %s/%s = %s (deleted at %v), model says %s (deleted at %v)", step, desc, src, id, got, rec.DeletedAt, want, m.deletedAt)
			}
		}
	}
	rep := mustVerify(t, s)
	var count int64
	var got records.Checksum
	for _, sr := range rep.Sources {
		count += sr.Live + sr.Deleted
		got += sr.Checksum
	}
	if count != int64(len(model)) || got != sum {
		t.Fatalf("step %d after %s: live ∪ deleted holds %d records (checksum %s), the model %d (checksum %s)", step, desc, count, got, len(model), sum)
	}
}
