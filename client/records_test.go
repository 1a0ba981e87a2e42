package client_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"erasure"
	"erasure/api"
	"erasure/records"
	"erasure/store/sqlrecords"
	"erasure/store/sqlrecords/sqlrecordstest"
)

func TestClient_Records(t *testing.T) {
	s, _ := sqlrecordstest.Open(t, filepath.Join(t.TempDir(), "records.db"), sqlrecords.Options{})
	at := time.Date(2016, 5, 1, 0, 0, 0, 0, time.UTC)
	var recs []records.Record
	for i := range 10 {
		r := records.Record{ID: fmt.Sprintf("b%02d", i), Version: 1, Payload: json.RawMessage(`{}`)}
		if i < 6 {
			r.DeletedAt, r.Reason = &at, "withdrawn"
		}
		recs = append(recs, r)
	}
	if err := s.Import(t.Context(), "sierra", recs); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.RecordsHandler(s, func(r *http.Request, role string) (string, error) {
		if r.Header.Get("Authorization") != "Bearer ops-secret" {
			return "", erasure.Errorf(erasure.EUNAUTHORIZED, "bad token")
		}
		return "ops", nil
	}))
	t.Cleanup(srv.Close)
	c := mustClient(t, srv.URL, "ops-secret")
	ctx := t.Context()

	t.Run("ArchiveDryRunThenInSteps", func(t *testing.T) {
		rep, err := c.ArchiveRecords(ctx, "sierra", records.ArchiveRequest{DeletedBefore: "2020-01-01", DryRun: true})
		if err != nil || !rep.DryRun || rep.Candidates != 6 {
			t.Fatalf("%+v %v", rep, err)
		}
		if _, err := c.ArchiveRecords(ctx, "sierra", records.ArchiveRequest{DeletedBefore: "2020-01-01"}); code(err) != erasure.ECONFLICT {
			t.Fatalf("over the guard without force: %v", err)
		}
		rep, err = c.ArchiveRecords(ctx, "sierra", records.ArchiveRequest{DeletedBefore: "2020-01-01", Force: true, Limit: 4, BatchSize: 2})
		if err != nil || rep.Moved != 4 || rep.Remaining != 2 {
			t.Fatalf("first step: %+v %v", rep, err)
		}
		rep, err = c.ArchiveRecords(ctx, "sierra", records.ArchiveRequest{DeletedBefore: "2020-01-01", Force: true, Limit: 4, BatchSize: 2})
		if err != nil || rep.Moved != 2 || rep.Remaining != 0 {
			t.Fatalf("second step: %+v %v", rep, err)
		}
	})
	t.Run("Restore", func(t *testing.T) {
		rep, err := c.RestoreRecords(ctx, "sierra", records.RestoreRequest{IDs: []string{"b00", "b09", "nope"}})
		if err != nil || rep.Moved != 1 || rep.AlreadyLive != 1 || rep.NotFound != 1 {
			t.Fatalf("%+v %v", rep, err)
		}
	})
	t.Run("ReconcileDryRun", func(t *testing.T) {
		rep, err := c.ReconcileRecords(ctx, "sierra", records.ReconcileRequest{Present: []string{"b06", "b07", "b08", "b09"}, DryRun: true})
		if err != nil || !rep.DryRun || rep.Candidates != 0 {
			t.Fatalf("%+v %v", rep, err)
		}
	})
	t.Run("Verify", func(t *testing.T) {
		rep, err := c.VerifyRecords(ctx, "")
		if err != nil || !rep.OK || len(rep.Sources) != 1 {
			t.Fatalf("%+v %v", rep, err)
		}
		if _, err := c.VerifyRecords(ctx, "Bad Source"); code(err) != erasure.EINVALID {
			t.Fatalf("bad source: %v", err)
		}
	})
}
