package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/api"
	"erasure/records"
	"erasure/store/sqlrecords"
	"erasure/store/sqlrecords/sqlrecordstest"
)

// recordsAuthorizer grants roles by bearer token: "reader" reads, "writer" reads and writes,
// "operator" does everything.
func recordsAuthorizer(r *http.Request, role string) (string, error) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	roles := map[string][]string{
		"reader":   {api.RoleRead},
		"writer":   {api.RoleRead, api.RoleWrite},
		"operator": {api.RoleRead, api.RoleWrite, api.RoleOperate},
	}[tok]
	if roles == nil {
		return "", erasure.Errorf(erasure.EUNAUTHORIZED, "a bearer token is required")
	}
	for _, r := range roles {
		if r == role {
			return tok, nil
		}
	}
	return "", erasure.Errorf(erasure.EFORBIDDEN, "token lacks role %s", role)
}

// recordsClock is an injectable time source that moves only when told.
type recordsClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *recordsClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *recordsClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestRecordRoutes_Statuses(t *testing.T) {
	ctx := context.Background()
	c := &recordsClock{t: time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, _ := sqlrecordstest.Open(t, filepath.Join(t.TempDir(), "erasure.db"), sqlrecords.Options{MaxArchiveShare: 0.2, Now: c.Now})
	srv := httptest.NewServer(api.RecordsHandler(s, recordsAuthorizer))
	t.Cleanup(srv.Close)

	// Fixtures: a live record, a live tombstone, an archived tombstone.
	for _, id := range []string{"b1", "b2", "b3"} {
		if _, _, err := s.Put(ctx, "sierra", records.Write{ID: id, Payload: []byte(`{"title":"t"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"b2", "b3"} {
		if _, _, err := s.Delete(ctx, "sierra", id, records.DeleteOptions{Reason: "withdrawn"}); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(time.Hour)
	if _, err := s.Restore(ctx, records.RestoreOptions{Source: "sierra", IDs: []string{"b1"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Import(ctx, "sierra", []records.Record{{ID: "old", Version: 1, Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	// Archive only b3: delete it earlier than b2 by moving b2 forward.
	if _, _, err := s.Put(ctx, "sierra", records.Write{ID: "b2", Payload: []byte(`{"title":"back"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Archive(ctx, records.ArchiveOptions{Source: "sierra", DeletedBefore: c.Now(), Force: true}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	if _, _, err := s.Delete(ctx, "sierra", "b2", records.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	big := `{"version":1,"payload":"` + strings.Repeat("x", api.MaxRecordBody) + `"}`
	long := strings.Repeat("i", records.MaxIDBytes+1)
	tests := []struct {
		name, method, path, token, body string
		want                            int
		wantBody                        string
	}{
		{"LiveRecordIs200", "GET", "/v1/records/sierra/b1", "reader", "", 200, `"title":"t"`},
		{"LiveTombstoneIs410", "GET", "/v1/records/sierra/b2", "reader", "", 410, `"reason":"deleted"`},
		{"ArchivedTombstoneIs410", "GET", "/v1/records/sierra/b3", "reader", "", 410, `"reason":"withdrawn"`},
		{"NeverSeenIs404", "GET", "/v1/records/sierra/nope", "reader", "", 404, `"code":"not_found"`},
		{"UnknownSourceIs404", "GET", "/v1/records/other/b1", "reader", "", 404, `"not_found"`},
		{"BadSourceIs400", "GET", "/v1/records/Sierra!/b1", "reader", "", 400, `"code":"invalid"`},
		{"SQLInjectionInSourceIs400", "GET", "/v1/records/x'%20OR%201=1--/b1", "reader", "", 400, `"invalid"`},
		{"LongIDIs400", "GET", "/v1/records/sierra/" + long, "reader", "", 400, `longer than`},
		{"NonPrintableIDIs400", "GET", "/v1/records/sierra/a%01b", "reader", "", 400, `non-printable`},
		{"NoTokenIs401", "GET", "/v1/records/sierra/b1", "", "", 401, `"unauthorized"`},
		{"ReaderCannotWrite", "PUT", "/v1/records/sierra/b9", "reader", `{"version":1,"payload":{}}`, 403, `"forbidden"`},
		{"PutCreates", "PUT", "/v1/records/sierra/b9", "writer", `{"version":1,"payload":{"a":1}}`, 201, `"status":"created"`},
		{"SamePutIsNoOp", "PUT", "/v1/records/sierra/b9", "writer", `{"version":1,"payload":{"a": 1}}`, 200, `"status":"unchanged"`},
		{"ConflictingPutIs409", "PUT", "/v1/records/sierra/b9", "writer", `{"version":1,"payload":{"a":2}}`, 409, `"conflict"`},
		{"HigherPutUpdates", "PUT", "/v1/records/sierra/b9", "writer", `{"version":5,"payload":{"a":2}}`, 200, `"status":"updated"`},
		{"LowerPutIs409", "PUT", "/v1/records/sierra/b9", "writer", `{"version":4,"payload":{"a":3}}`, 409, `"conflict"`},
		{"UnknownFieldIs400", "PUT", "/v1/records/sierra/b9", "writer", `{"version":6,"payload":{},"colour":"red"}`, 400, `unknown field`},
		{"MalformedJSONIs400", "PUT", "/v1/records/sierra/b9", "writer", `{"version":6,`, 400, `"invalid"`},
		{"TrailingJSONIs400", "PUT", "/v1/records/sierra/b9", "writer", `{"version":6,"payload":{}} {}`, 400, `after the JSON value`},
		{"DuplicateKeyIs400", "PUT", "/v1/records/sierra/b9", "writer", `{"version":6,"payload":{},"version":7}`, 400, `twice`},
		{"DuplicateKeyInPayloadIs400", "PUT", "/v1/records/sierra/b9", "writer", `{"version":6,"payload":{"a":1,"a":2}}`, 400, `twice`},
		{"FieldInOtherCaseIs400", "PUT", "/v1/records/sierra/b9", "writer", `{"Version":6,"payload":{}}`, 400, `case-sensitive`},
		{"LoneSurrogateInPayloadIs400", "PUT", "/v1/records/sierra/b9", "writer", `{"version":6,"payload":{"t":"\udc01"}}`, 400, `surrogate`},
		{"BatchDuplicateKeyIs400", "POST", "/v1/records/sierra:batch", "writer", `{"writes":[{"id":"c2","id":"c3","payload":{}}]}`, 400, `twice`},
		{"MissingPayloadIs400", "PUT", "/v1/records/sierra/b9", "writer", `{"version":6}`, 400, `payload is required`},
		{"OversizedBodyIs413", "PUT", "/v1/records/sierra/b9", "writer", big, 413, `"too_large"`},
		{"PutToArchivedContinuesItsVersion", "PUT", "/v1/records/sierra/b3", "writer", `{"payload":{"title":"again"}}`, 200, `"version":3`},
		{"DeleteMakesTombstone", "DELETE", "/v1/records/sierra/b9?reason=gone", "writer", "", 200, `"deleted":true`},
		{"DeleteAgainIsNoOp", "DELETE", "/v1/records/sierra/b9", "writer", "", 200, `"status":"unchanged"`},
		{"PurgeDropsPayload", "DELETE", "/v1/records/sierra/b9?mode=purge", "writer", "", 200, `"version":7`},
		{"DeleteNeverSeenIs404", "DELETE", "/v1/records/sierra/nope", "writer", "", 404, `"not_found"`},
		{"DeleteBadModeIs400", "DELETE", "/v1/records/sierra/b1?mode=shred", "writer", "", 400, `mode`},
		{"DeleteUnknownParamIs400", "DELETE", "/v1/records/sierra/b1?force=1", "writer", "", 400, `unknown query`},
		{"BatchReportsEachWrite", "POST", "/v1/records/sierra:batch", "writer", `{"writes":[{"id":"c1","payload":{"n":1}},{"id":"c1","version":1,"payload":{"n":2}},{"id":"","payload":{}}]}`, 200, `"failed":2`},
		{"BatchBadSourceIs400", "POST", "/v1/records/BAD:batch", "writer", `{"writes":[{"id":"c1","payload":{}}]}`, 400, `"invalid"`},
		{"BatchEmptyIs400", "POST", "/v1/records/sierra:batch", "writer", `{"writes":[]}`, 400, `empty`},
		{"WriterCannotArchive", "POST", "/v1/records/sierra/archive", "writer", `{"deleted_before":"2030-01-01"}`, 403, `"forbidden"`},
		{"ArchiveBadDateIs400", "POST", "/v1/records/sierra/archive", "operator", `{"deleted_before":"last year"}`, 400, `deleted_before`},
		{"ArchiveDryRunCountsByYear", "POST", "/v1/records/sierra/archive", "operator", `{"deleted_before":"2030-01-01","dry_run":true}`, 200, `"by_year":[{"year":2015,"records":2`},
		{"ArchiveGuardIs409", "POST", "/v1/records/sierra/archive", "operator", `{"deleted_before":"2030-01-01","dry_run":false}`, 409, `guard`},
		{"RestoreNeedsIDsOrDate", "POST", "/v1/records/sierra/restore", "operator", `{}`, 400, `either ids or deleted_after`},
		{"RestoreCountsUnknownIDs", "POST", "/v1/records/sierra/restore", "operator", `{"ids":["nope","b1"]}`, 200, `"not_found":1`},
		{"ReconcileEmptyListIs400", "POST", "/v1/records/sierra/reconcile", "operator", `{"present":[]}`, 400, `present is empty`},
		{"ReconcileMissingControlIs400", "POST", "/v1/records/sierra/reconcile", "operator", `{"present":["b1"],"control":["zz"]}`, 400, `control ids`},
		{"ReconcileGuardIs409", "POST", "/v1/records/sierra/reconcile", "operator", `{"present":["b1"]}`, 409, `guard`},
		{"VerifyPasses", "POST", "/v1/records/sierra:verify", "operator", "", 200, `"ok":true`},
		{"NotJSONBodyIs415", "PUT", "/v1/records/sierra/b9", "writer", `{"version":9,"payload":{}}`, 415, `application/json`},
		{"UnknownEndpointIs404", "POST", "/v1/records/sierra:explode", "operator", "", 404, `no such`},
		{"ExportStreamsLive", "GET", "/v1/records/sierra:export?limit=1", "reader", "", 200, `"id":"b1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.body != "" && !strings.HasPrefix(tc.name, "NotJSON") {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want || !strings.Contains(string(body), tc.wantBody) {
				t.Fatalf("%s %s: %d %s\nwant %d with %s", tc.method, tc.path, resp.StatusCode, body, tc.want, tc.wantBody)
			}
			if resp.StatusCode >= 400 {
				var e struct {
					Error struct{ Code, Message string }
				}
				if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
					t.Fatalf("error body %s is not {\"error\":{\"code\",\"message\"}}", body)
				}
			}
		})
	}
	t.Run("BadInputChangedNothing", func(t *testing.T) {
		if v, err := s.Verify(ctx, ""); err != nil || !v.OK {
			t.Fatalf("verify: %+v, %v", v, err)
		}
		rec, err := s.Get(ctx, "sierra", "b1")
		if err != nil || rec.Version != 1 || rec.Deleted {
			t.Fatalf("b1 = %+v, %v; want untouched at version 1", rec, err)
		}
	})
}

// TestRecordRoutes_ErasedRecords: a record an erasure tombstoned or purged answers 410, a
// plain write over it is refused (409), force needs the operate role, and a forced write
// brings it back.
func TestRecordRoutes_ErasedRecords(t *testing.T) {
	ctx := context.Background()
	s, db := sqlrecordstest.Open(t, filepath.Join(t.TempDir(), "erasure.db"), sqlrecords.Options{})
	srv := httptest.NewServer(api.RecordsHandler(s, recordsAuthorizer))
	t.Cleanup(srv.Close)
	for _, id := range []string{"e1", "e2"} {
		if _, _, err := s.Put(ctx, "sierra", records.Write{ID: id, Payload: []byte(`{"title":"t"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	// What the records connector does for an erasure request.
	if _, _, err := s.Delete(ctx, "sierra", "e1", records.DeleteOptions{Reason: "erasure request", ErasedAs: "record_id"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Delete(ctx, "sierra", "e2", records.DeleteOptions{Reason: "erasure request", Purge: true, ErasedAs: "record_id"}); err != nil {
		t.Fatal(err)
	}
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, method, path, token, body string
		want                            int
		wantBody                        string
	}{
		{"ErasedIs410", "GET", "/v1/records/sierra/e1", "reader", "", 410, `erasure request`},
		{"PurgedIs410", "GET", "/v1/records/sierra/e2", "reader", "", 410, `"gone"`},
		{"PlainWriteIs409", "PUT", "/v1/records/sierra/e1", "writer", `{"payload":{"title":"back"}}`, 409, `erasure`},
		{"PlainWriteOverPurgedIs409", "PUT", "/v1/records/sierra/e2", "writer", `{"version":9,"payload":{"title":"back"}}`, 409, `erasure`},
		{"PlainBatchWriteIs409", "POST", "/v1/records/sierra:batch", "writer", `{"writes":[{"id":"e1","payload":{}}]}`, 200, `"code":"conflict"`},
		{"ForceWithoutOperateIs403", "PUT", "/v1/records/sierra/e1", "writer", `{"payload":{"title":"back"},"force":true}`, 403, `"forbidden"`},
		{"ForcedBatchWithoutOperateIs403", "POST", "/v1/records/sierra:batch", "writer", `{"writes":[{"id":"e1","payload":{},"force":true}]}`, 403, `"forbidden"`},
		{"StillErased", "GET", "/v1/records/sierra/e1", "reader", "", 410, ``},
		{"ForceOnADeletionIs400", "DELETE", "/v1/records/sierra/e1?force=true", "operator", "", 400, `unknown query`},
		{"ForcedWriteBringsItBack", "PUT", "/v1/records/sierra/e1", "operator", `{"payload":{"title":"back"},"force":true}`, 200, `"status":"updated"`},
		{"BackIs200", "GET", "/v1/records/sierra/e1", "reader", "", 200, `"title":"back"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(tc.method, tc.path, tc.token, tc.body)
			if code != tc.want || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("%s %s: %d %s; want %d with %s", tc.method, tc.path, code, body, tc.want, tc.wantBody)
			}
		})
	}
	evs, err := db.Events(ctx, records.EventResurrected)
	if err != nil || len(evs) != 1 || evs[0].Actor != "operator" {
		t.Fatalf("resurrection events %+v, %v; want one by operator", evs, err)
	}
}

// TestRecordRoutes_HonourMaxBodyBytes: the record routes take no body larger than the
// server's max_body_bytes, whatever their own limit.
func TestRecordRoutes_HonourMaxBodyBytes(t *testing.T) {
	s, _ := sqlrecordstest.Open(t, filepath.Join(t.TempDir(), "erasure.db"), sqlrecords.Options{})
	srv := httptest.NewServer(api.RecordsHandler(s, recordsAuthorizer, api.WithMaxBodyBytes(256)))
	t.Cleanup(srv.Close)
	payload := `{"t":"` + strings.Repeat("x", 300) + `"}`
	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "/v1/records/sierra/b1", `{"payload":` + payload + `}`},
		{"POST", "/v1/records/sierra:batch", `{"writes":[{"id":"b1","payload":` + payload + `}]}`},
		{"POST", "/v1/records/sierra/restore", `{"ids":["` + strings.Repeat("i", 300) + `"]}`},
		{"POST", "/v1/records/sierra/reconcile", `{"present":["` + strings.Repeat("i", 300) + `"]}`},
	} {
		for _, chunked := range []bool{false, true} {
			var body io.Reader = strings.NewReader(tc.body)
			if chunked {
				body = io.MultiReader(strings.NewReader(tc.body)) // no length: read until the limit
			}
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, body)
			req.Header.Set("Authorization", "Bearer operator")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("%s %s (chunked %v) of %d bytes: %d, want 413", tc.method, tc.path, chunked, len(tc.body), resp.StatusCode)
			}
		}
	}
	if _, err := s.Get(context.Background(), "sierra", "b1"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Fatalf("a refused body wrote a record: %v", err)
	}
}
