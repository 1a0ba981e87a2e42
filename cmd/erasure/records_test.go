package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/api"
	"erasure/records"
	"erasure/store/sqlrecords"
	"erasure/store/sqlrecords/sqlrecordstest"
)

// recordsEnvironment serves the record store's API over a fresh database holding 100 records
// of source "sierra", 60 of them tombstones deleted in 2016, and sets ERASURE_URL and
// ERASURE_TOKEN. It returns the store and the database path.
func recordsEnvironment(t *testing.T) (*sqlrecords.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "erasure.db")
	s, _ := sqlrecordstest.Open(t, path, sqlrecords.Options{})
	at := time.Date(2016, 5, 1, 0, 0, 0, 0, time.UTC)
	var recs []records.Record
	for i := range 100 {
		r := records.Record{ID: fmt.Sprintf("b%03d", i), Version: 1, Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
		if i%5 < 3 {
			r.DeletedAt, r.Reason = &at, "withdrawn"
		}
		recs = append(recs, r)
	}
	if err := s.Import(context.Background(), "sierra", recs); err != nil {
		t.Fatal(err)
	}
	auth := func(r *http.Request, role string) (string, error) {
		if r.Header.Get("Authorization") != "Bearer operator-secret" {
			return "", erasure.Errorf(erasure.EUNAUTHORIZED, "bad token")
		}
		return "operator", nil
	}
	srv := httptest.NewServer(api.RecordsHandler(s, auth))
	t.Cleanup(srv.Close)
	t.Setenv("ERASURE_URL", srv.URL)
	t.Setenv("ERASURE_TOKEN", "operator-secret")
	return s, path
}

func writeLines(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRecordsCommands(t *testing.T) {
	s, dbPath := recordsEnvironment(t)
	ctx := context.Background()

	t.Run("ArchiveDryRunReportsByYear", func(t *testing.T) {
		code, out, _ := run(t, "records", "archive", "--source", "sierra", "--deleted-before", "2020-01-01", "--dry-run")
		if code != 0 || !strings.Contains(out, "2016") || !strings.Contains(lastLine(out), "would move 60 records of sierra") {
			t.Fatalf("exit %d, out:\n%s", code, out)
		}
	})
	t.Run("ArchiveGuardRefusesWithoutForce", func(t *testing.T) {
		code, _, errb := run(t, "records", "archive", "--source", "sierra", "--deleted-before", "2020-01-01")
		if code != 5 || !strings.Contains(errb, "guard") {
			t.Fatalf("exit %d, stderr:\n%s", code, errb)
		}
	})
	t.Run("ArchiveMovesAndCompacts", func(t *testing.T) {
		code, out, _ := run(t, "records", "archive", "--source", "sierra", "--deleted-before", "2020-01-01", "--force", "--compact", "--batch", "7")
		if code != 0 || !strings.HasPrefix(lastLine(out), "archived 60 tombstones of sierra deleted before 2020-01-01 in 9 batches") || !strings.Contains(out, "compacted") {
			t.Fatalf("exit %d, out:\n%s", code, out)
		}
	})
	t.Run("VerifyPasses", func(t *testing.T) {
		code, out, _ := run(t, "records", "verify")
		if code != 0 || !strings.Contains(out, "live 40 (0 tombstones), deleted 60") || !strings.HasPrefix(lastLine(out), "verified 1 source:") {
			t.Fatalf("exit %d, out:\n%s", code, out)
		}
	})
	t.Run("RestoreByIDsAndFile", func(t *testing.T) {
		code, out, _ := run(t, "records", "restore", "--source", "sierra", "b000", "nope", "--ids-file", writeLines(t, "# comment", "b001", "", "b003"))
		if code != 0 || lastLine(out) != "restored 2 records of sierra in 1 batch; 1 already live, 1 never seen" {
			t.Fatalf("exit %d, out:\n%s", code, out)
		}
		if rec, err := s.Get(ctx, "sierra", "b001"); err != nil || rec.Partition != records.Live || !rec.Deleted {
			t.Fatalf("b001 = %+v, %v; want a tombstone back in live", rec, err)
		}
	})
	t.Run("ReindexThroughTheAPI", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out.jsonl")
		code, _, errb := run(t, "records", "reindex", "--source", "sierra", "--to", "file:"+out, "--parallel", "2", "--batch-records", "10")
		if code != 0 || !strings.HasPrefix(lastLine(errb), "reindexed 42 records of sierra") {
			t.Fatalf("exit %d, stderr:\n%s", code, errb)
		}
		if n := countLines(t, out); n != 42 {
			t.Fatalf("the file holds %d lines, want 42", n)
		}
	})
	t.Run("ReindexFromTheDatabaseIncludingDeleted", func(t *testing.T) {
		code, out, errb := run(t, "records", "reindex", "--db", dbPath, "--to", "stdout", "--include-deleted", "--quiet")
		if code != 0 || strings.Count(out, "\n") != 100 || !strings.HasPrefix(lastLine(errb), "reindexed 100 records of every source") {
			t.Fatalf("exit %d, %d lines, stderr:\n%s", code, strings.Count(out, "\n"), errb)
		}
	})
	t.Run("ReindexSpecificWarns", func(t *testing.T) {
		code, out, errb := run(t, "records", "reindex", "--source", "sierra", "--ids", "b004,b002,nope", "--to", "stdout")
		if code != 0 || strings.Count(out, "\n") != 1 || strings.Count(errb, "warning:") != 2 {
			t.Fatalf("exit %d, out:\n%s\nstderr:\n%s", code, out, errb)
		}
	})
	t.Run("ReconcileChecksTheControlList", func(t *testing.T) {
		present := writeLines(t, "b004", "b009")
		code, _, errb := run(t, "records", "reconcile", "--source", "sierra", "--present", present, "--control", writeLines(t, "b014"))
		if code != 2 || !strings.Contains(errb, "control ids are absent") {
			t.Fatalf("exit %d, stderr:\n%s", code, errb)
		}
		code, out, _ := run(t, "records", "reconcile", "--source", "sierra", "--present", present, "--dry-run")
		if code != 0 || !strings.Contains(lastLine(out), "would tombstone 38 of 40 live records") {
			t.Fatalf("exit %d, out:\n%s", code, out)
		}
	})
	t.Run("BadInput", func(t *testing.T) {
		for _, args := range [][]string{
			{"records", "archive", "--source", "sierra"},
			{"records", "archive", "--source", "Bad Source", "--deleted-before", "2020-01-01"},
			{"records", "restore", "--source", "sierra"},
			{"records", "reindex", "--source", "sierra"},
			{"records", "reindex", "--to", "ftp://x"},
		} {
			if code, _, errb := run(t, args...); code != 2 {
				t.Errorf("%v: exit %d, want 2; stderr %s", args, code, errb)
			}
		}
	})
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
	}
	return n
}
