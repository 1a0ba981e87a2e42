package sqlrecords_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"erasure/records"
	"erasure/store/sqlrecords"
)

const crashChildEnv = "RECORDS_CRASH_CHILD_DB"

// TestArchive_CrashSafe archives 100,000 tombstones in a child process, kills it with SIGKILL
// part-way, then checks that nothing was lost or duplicated, that verify passes, and that
// running the archive again finishes the job.
func TestArchive_CrashSafe(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(t, path)
		return
	}
	if testing.Short() {
		t.Skip("loads 100,000 records")
	}
	ctx := context.Background()
	c := newClock()
	path := filepath.Join(t.TempDir(), "erasure.db")
	s, db := openAt(t, path, c.Now, sqlrecords.Options{})
	const tombstones, live = 100_000, 25_000
	deleted := c.Now().Add(-48 * time.Hour)
	var batch []records.Record
	for i := range tombstones + live {
		r := records.Record{ID: fmt.Sprintf("b%07d", i), Version: 2, Payload: []byte(fmt.Sprintf(`{"title":"record %d"}`, i))}
		if i%5 != 0 { // four tombstones for every live record, interleaved
			r.DeletedAt, r.Reason = &deleted, "withdrawn"
		}
		batch = append(batch, r)
		if len(batch) == 10_000 {
			if err := s.Import(ctx, "sierra", batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.Import(ctx, "sierra", batch); err != nil {
		t.Fatal(err)
	}
	before := mustVerify(t, s).Sources[0]
	if before.Live != tombstones+live {
		t.Fatalf("loaded %d records, want %d", before.Live, tombstones+live)
	}

	child := exec.Command(os.Args[0], "-test.run=^TestArchive_CrashSafe$", "-test.count=1")
	child.Env = append(os.Environ(), crashChildEnv+"="+path)
	child.Stdout, child.Stderr = os.Stderr, os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once some batches have committed, well before the end.
	var moves int
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if err := db.R.QueryRow(`SELECT COUNT(*) FROM records_moves`).Scan(&moves); err != nil {
			t.Fatal(err)
		}
		if moves >= 10 {
			break
		}
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	if moves < 10 {
		t.Fatalf("the child archived only %d batches in two minutes", moves)
	}

	mid := mustVerify(t, s).Sources[0]
	if mid.Deleted == 0 || mid.Deleted >= tombstones {
		t.Fatalf("after the kill %d records are archived: want the kill to land mid-way (0 < n < %d)", mid.Deleted, tombstones)
	}
	if mid.Live+mid.Deleted != before.Live || mid.Checksum != before.Checksum {
		t.Fatalf("after the kill live ∪ deleted holds %d records (checksum %s), before %d (%s)", mid.Live+mid.Deleted, mid.Checksum, before.Live, before.Checksum)
	}
	t.Logf("killed after %d of %d tombstones were archived", mid.Deleted, tombstones)

	rep, err := s.Archive(ctx, records.ArchiveOptions{Source: "sierra", DeletedBefore: c.Now(), Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Moved != tombstones-mid.Deleted {
		t.Fatalf("the re-run moved %d, want the %d left", rep.Moved, tombstones-mid.Deleted)
	}
	after := mustVerify(t, s).Sources[0]
	if after.Deleted != tombstones || after.Live != live || after.Checksum != before.Checksum {
		t.Fatalf("after the re-run: %d live, %d deleted, checksum %s; want %d, %d, %s", after.Live, after.Deleted, after.Checksum, live, tombstones, before.Checksum)
	}
	if after.MovesIntact != after.Moves {
		t.Fatalf("%d of %d move manifests check out, want all", after.MovesIntact, after.Moves)
	}
}

// crashChild archives everything it can, slowly enough (small batches, durable commits) for
// the parent to kill it part-way.
func crashChild(t *testing.T, path string) {
	c := newClock()
	s, _ := openAt(t, path, c.Now, sqlrecords.Options{})
	_, err := s.Archive(context.Background(), records.ArchiveOptions{Source: "sierra", DeletedBefore: c.Now(), Force: true, BatchSize: 200})
	if err != nil {
		t.Fatal(err)
	}
}
