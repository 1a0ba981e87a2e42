package sqlrecords_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"erasure/api"
	"erasure/records"
	"erasure/store/sqlrecords"
	"erasure/store/sqlrecords/sqlrecordstest"
)

func BenchmarkRecordsGET(b *testing.B) {
	ctx := context.Background()
	db, err := sqlrecordstest.OpenDB(filepath.Join(b.TempDir(), "r.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s, err := sqlrecords.Open(ctx, db.W, sqlrecords.Options{AppendAudit: db.AppendAudit, ReadDB: db.R})
	if err != nil {
		b.Fatal(err)
	}
	var batch []records.Record
	for i := 0; i < 20000; i++ {
		batch = append(batch, records.Record{ID: fmt.Sprintf("b%08d", i), Version: 1, Payload: []byte(`{"title":"Record","author":"Author 1","year":1950,"note":"lorem ipsum dolor sit amet lorem ipsum dolor sit amet lorem ipsum dolor sit amet"}`)})
	}
	if err := s.Import(ctx, "sierra", batch); err != nil {
		b.Fatal(err)
	}
	h := api.RecordsHandler(s, func(*http.Request, string) (string, error) { return "bench", nil })
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		w.Write([]byte(`{"source":"sierra","id":"b00000001","version":1,"payload":{"title":"x"}}` + "\n"))
	})
	for _, c := range []struct {
		name string
		h    http.Handler
		path func(i int) string
	}{
		{"bare", bare, func(int) string { return "/v1/records/sierra/b00000001" }},
		{"200", h, func(i int) string { return fmt.Sprintf("/v1/records/sierra/b%08d", (i*7919)%20000) }},
		{"404", h, func(i int) string { return fmt.Sprintf("/v1/records/sierra/x%08d", i%1000) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			for i := 0; i < b.N; i++ {
				// A request's context can be cancelled, as net/http's are.
				rctx, cancel := context.WithCancel(ctx)
				r := httptest.NewRequest("GET", c.path(i), nil).WithContext(rctx)
				w := httptest.NewRecorder()
				c.h.ServeHTTP(w, r)
				cancel()
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime) - syscall.TimevalToNsec(ru0.Utime) + syscall.TimevalToNsec(ru1.Stime) - syscall.TimevalToNsec(ru0.Stime))
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}
