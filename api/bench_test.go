package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"erasure/api"
	"erasure/api/apitest"
)

// BenchmarkSubmit measures a submission through the whole HTTP layer (auth, decoding,
// fingerprint, JSON response, metrics, log line) next to its baseline, the same submission
// handed to the same in-memory Service directly. Run with:
//
//	go test -run '^$' -bench Submit -benchmem ./api/
func BenchmarkSubmit(b *testing.B) {
	body := []byte(`{"subject":{"user_id":"42","email":["a@example.com","b@example.com"]},"reason":"user_request"}`)
	b.Run("baseline=service", func(b *testing.B) {
		svc := apitest.New([]string{"user_id", "email"}, testDatasets...)
		sub, _ := api.DecodeSubmission(bytes.NewReader(body), 1<<20)
		b.ResetTimer()
		for i := range b.N {
			sub.IdempotencyKey = fmt.Sprint(i)
			if _, _, err := svc.Submit(b.Context(), sub); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("api", func(b *testing.B) {
		svc := apitest.New([]string{"user_id", "email"}, testDatasets...)
		h := api.New(api.Config{Service: svc, Tokens: testTokens}).Handler()
		b.ResetTimer()
		for i := range b.N {
			r := httptest.NewRequest("POST", "/v1/requests", bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer "+tokSubmit)
			r.Header.Set("Idempotency-Key", fmt.Sprint(i))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusCreated {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		for range b.N {
			if _, err := api.DecodeSubmission(bytes.NewReader(body), 1<<20); err != nil {
				b.Fatal(err)
			}
		}
	})
}
