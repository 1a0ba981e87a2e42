package api_test

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"erasure/api"
	"erasure/records"
)

// oneRecord is a record store holding one record, for the GET route.
type oneRecord struct {
	records.Service
	rec *records.Record
}

func (o oneRecord) Get(ctx context.Context, source, id string) (*records.Record, error) {
	return o.rec, nil
}

// The GET route writes its answers by hand: they must be the bytes encoding/json writes.
func TestRecordsGET_AnswersAreEncodingJSONs(t *testing.T) {
	strs := []string{"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "line\nbreak\ttab\r\x00\x01\x1f\x7f",
		"é ü 日本 🎉", "\u2028\u2029", "bad \xff\xfe utf8", "mixed <\xc3\x28> \u2029"}
	payloads := []string{``, `{"a":1}`, "{ \"spaced\" : [ 1 , 2 ] ,\n \"html\": \"<b>&</b>\", \"ls\": \"\u2028\" }", `"just a string"`, `[]`, `null`, `12.5e3`}
	rnd := rand.New(rand.NewPCG(1, 2))
	pick := func(l []string) string { return l[rnd.IntN(len(l))] }
	for i := 0; i < 500; i++ {
		rec := &records.Record{Source: pick(strs), ID: pick(strs), Version: rnd.Int64N(1 << 40), Payload: json.RawMessage(pick(payloads)), Reason: pick(strs),
			UpdatedAt: time.UnixMilli(rnd.Int64N(1 << 42)).UTC(), Partition: pick([]string{"live", "deleted"})}
		if rnd.IntN(3) == 0 {
			at := time.Date(2020, 1, 2, 3, 4, 5, rnd.IntN(1e9), time.UTC)
			rec.Deleted, rec.DeletedAt = true, &at
		}
		h := api.RecordsHandler(oneRecord{rec: rec}, func(*http.Request, string) (string, error) { return "t", nil })
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/records/s/x", nil))
		got, _ := io.ReadAll(w.Result().Body)
		var want []byte
		if rec.Deleted {
			want, _ = json.Marshal(map[string]any{
				"error":      api.ErrorDetail{Code: "gone", Message: "this record has been deleted"},
				"deleted_at": rec.DeletedAt, "reason": rec.Reason, "version": rec.Version,
			})
		} else {
			want, _ = json.Marshal(rec)
		}
		want = append(want, '\n')
		if string(got) != string(want) {
			t.Fatalf("record %+v\n got  %s\n want %s", rec, got, want)
		}
		if ct := w.Result().Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
	}
}
