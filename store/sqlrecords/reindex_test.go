package sqlrecords_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"erasure/internal/testenv"
	"erasure/records"
	"erasure/reindex"
	"erasure/store/sqlrecords"
)

// loadSource imports n records into source: every third is a tombstone deleted a year ago,
// tombstones purged (small) and live records carrying a larger payload.
func loadSource(t *testing.T, s *sqlrecords.Store, c *clock, source string, n int) (live, tombs int) {
	t.Helper()
	old := c.Now().Add(-365 * 24 * time.Hour)
	var recs []records.Record
	for i := range n {
		r := records.Record{ID: fmt.Sprintf("%s-%05d", source, i), Version: 1}
		if i%3 == 0 {
			r.DeletedAt, r.Reason = &old, "withdrawn"
			tombs++
		} else {
			r.Payload = []byte(fmt.Sprintf(`{"n":%d,"text":"%s"}`, i, bytes.Repeat([]byte("x"), 200)))
			live++
		}
		recs = append(recs, r)
	}
	if err := s.Import(context.Background(), source, recs); err != nil {
		t.Fatal(err)
	}
	return live, tombs
}

// collectSink keeps every batch.
type collectSink struct {
	mu      sync.Mutex
	batches []records.Batch
	failAt  int // fail the n-th Send (1-based) when > 0
	sends   int
}

func (s *collectSink) Send(ctx context.Context, b *records.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sends++
	if s.failAt > 0 && s.sends == s.failAt {
		return errors.New("sink down")
	}
	s.batches = append(s.batches, records.Batch{Body: append([]byte(nil), b.Body...), Records: b.Records})
	return nil
}

func (s *collectSink) Close() error { return nil }

func (s *collectSink) ids(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, b := range s.batches {
		sc := bufio.NewScanner(bytes.NewReader(b.Body))
		sc.Buffer(nil, 1<<20)
		n := 0
		for sc.Scan() {
			var r records.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("line %q: %v", sc.Bytes(), err)
			}
			out[r.ID]++
			n++
		}
		if n != b.Records {
			t.Fatalf("batch says %d records, holds %d lines", b.Records, n)
		}
	}
	return out
}

func TestReindex_Modes(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, _ := openStore(t, c)
	liveA, tombsA := loadSource(t, s, c, "alpha", 9000)
	liveB, tombsB := loadSource(t, s, c, "beta", 300)
	if _, err := s.Archive(ctx, records.ArchiveOptions{Source: "alpha", DeletedBefore: c.Now(), Force: true}); err != nil {
		t.Fatal(err)
	}

	t.Run("CompleteStreamsLivePartitionOnceInParallelSegments", func(t *testing.T) {
		sink := &collectSink{}
		rep, err := reindex.Run(ctx, s, sink, records.ReindexOptions{Parallel: 3, BatchRecords: 500})
		if err != nil {
			t.Fatal(err)
		}
		ids := sink.ids(t)
		want := liveA + liveB + tombsB // alpha's tombstones are archived
		if len(ids) != want || rep.Records != int64(want) || rep.Segments != 4 {
			t.Fatalf("streamed %d distinct ids (%d records, %d segments), want %d in 4 segments", len(ids), rep.Records, rep.Segments, want)
		}
		for id, n := range ids {
			if n != 1 {
				t.Fatalf("%s streamed %d times", id, n)
			}
		}
	})
	t.Run("BatchesAreBoundedByCountAndBytes", func(t *testing.T) {
		sink := &collectSink{}
		if _, err := reindex.Run(ctx, s, sink, records.ReindexOptions{Source: "alpha", BatchRecords: 100, BatchBytes: 8 << 10}); err != nil {
			t.Fatal(err)
		}
		for _, b := range sink.batches {
			if b.Records > 100 || len(b.Body) > 8<<10 {
				t.Fatalf("a batch holds %d records in %d bytes: bounds are 100 and %d", b.Records, len(b.Body), 8<<10)
			}
		}
		if len(sink.ids(t)) != liveA {
			t.Fatalf("streamed %d, want %d", len(sink.ids(t)), liveA)
		}
	})
	t.Run("IncludeDeletedAddsTheDeletedPartition", func(t *testing.T) {
		sink := &collectSink{}
		if _, err := reindex.Run(ctx, s, sink, records.ReindexOptions{Source: "alpha", IncludeDeleted: true}); err != nil {
			t.Fatal(err)
		}
		if n := len(sink.ids(t)); n != liveA+tombsA {
			t.Fatalf("streamed %d, want %d", n, liveA+tombsA)
		}
	})
	t.Run("PartialStopsAtLimit", func(t *testing.T) {
		sink := &collectSink{}
		rep, err := reindex.Run(ctx, s, sink, records.ReindexOptions{Source: "alpha", Limit: 1234, BatchRecords: 100})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(sink.ids(t)); n != 1234 || rep.Records != 1234 {
			t.Fatalf("streamed %d, want 1234", n)
		}
	})
	t.Run("SpecificWarnsAboutIDsItCannotFind", func(t *testing.T) {
		sink := &collectSink{}
		var warnings []string
		rep, err := reindex.Run(ctx, s, sink, records.ReindexOptions{Source: "alpha", IDs: []string{"alpha-00001", "alpha-00000", "nope"},
			Warn: func(m string) { warnings = append(warnings, m) }})
		if err != nil {
			t.Fatal(err)
		}
		if ids := sink.ids(t); len(ids) != 1 || ids["alpha-00001"] != 1 || rep.Missing != 2 || len(warnings) != 2 {
			t.Fatalf("streamed %v, missing %d, warnings %q", ids, rep.Missing, warnings)
		}
	})
	t.Run("ResumesFromCheckpoint", func(t *testing.T) {
		cp := filepath.Join(t.TempDir(), "reindex.checkpoint")
		sink := &collectSink{failAt: 7}
		o := records.ReindexOptions{Source: "alpha", Parallel: 2, BatchRecords: 200, Checkpoint: cp}
		if _, err := reindex.Run(ctx, s, sink, o); err == nil {
			t.Fatal("the sink failed, the reindex did not")
		}
		if _, err := os.Stat(cp); err != nil {
			t.Fatalf("no checkpoint after a failure: %v", err)
		}
		first := len(sink.ids(t))
		sink.failAt = 0
		rep, err := reindex.Run(ctx, s, sink, o)
		if err != nil {
			t.Fatal(err)
		}
		ids := sink.ids(t)
		if len(ids) != liveA || !rep.Resumed {
			t.Fatalf("after resuming %d distinct ids were streamed (resumed=%v), want %d", len(ids), rep.Resumed, liveA)
		}
		again := 0
		for _, n := range ids {
			again += n - 1
		}
		// At least once: only batches sent after the last saved checkpoint may come again.
		if int64(first)+rep.Records-int64(again) < int64(liveA) || again > first {
			t.Fatalf("first run sent %d, resumed run %d, %d twice", first, rep.Records, again)
		}
		if _, err := os.Stat(cp); !os.IsNotExist(err) {
			t.Fatalf("the checkpoint is still there after success: %v", err)
		}
	})
	t.Run("ProgressReportsTotalsAndEnds", func(t *testing.T) {
		var last records.Progress
		_, err := reindex.Run(ctx, s, reindex.NewJSONLSink(io.Discard, nil), records.ReindexOptions{Source: "alpha", Progress: func(p records.Progress) { last = p }})
		if err != nil {
			t.Fatal(err)
		}
		if !last.Done || last.Records != int64(liveA) || last.Total != int64(liveA) || last.Bytes == 0 {
			t.Fatalf("last progress %+v", last)
		}
	})
	t.Run("HTTPSinkPostsNDJSONAndRetries", func(t *testing.T) {
		var mu sync.Mutex
		got, calls := 0, 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			if r.Header.Get("Content-Type") != "application/x-ndjson" {
				w.WriteHeader(http.StatusUnsupportedMediaType)
				return
			}
			sc := bufio.NewScanner(r.Body)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				got++
			}
		}))
		defer srv.Close()
		sink, err := reindex.NewHTTPSink(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reindex.Run(ctx, s, sink, records.ReindexOptions{Source: "beta", BatchRecords: 50}); err != nil {
			t.Fatal(err)
		}
		if got != liveB+tombsB {
			t.Fatalf("endpoint received %d records, want %d", got, liveB+tombsB)
		}
	})
	t.Run("NATSSinkPublishesBatches", func(t *testing.T) {
		url := testenv.Address(t, "ERASURE_TEST_NATS")
		nc, err := nats.Connect(url)
		if err != nil {
			testenv.Unavailable(t, "ERASURE_TEST_NATS", err)
		}
		defer nc.Close()
		subject := testenv.Name("reindex")
		sub, err := nc.SubscribeSync(subject)
		if err != nil {
			t.Fatal(err)
		}
		nc.Flush()
		sink, err := reindex.NewNATSSink(url, subject)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reindex.Run(ctx, s, sink, records.ReindexOptions{Source: "beta", BatchRecords: 64}); err != nil {
			t.Fatal(err)
		}
		sink.Close()
		got := 0
		for got < liveB+tombsB {
			m, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("after %d records: %v", got, err)
			}
			got += bytes.Count(m.Data, []byte("\n"))
		}
		if got != liveB+tombsB {
			t.Fatalf("received %d records, want %d", got, liveB+tombsB)
		}
	})
}
