// Command notify benchmarks webhook notifications on the embedded SQLite store: N requests
// complete, and the notifier and the deliverer carry each request.completed to a receiver on
// loopback, signed. It prints notifications per second next to a baseline measured in the same
// run: the same bodies POSTed to the same receiver with the same number of workers, signed the
// same way, with nothing stored.
//
//	go run ./bench/notify -requests 5000
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/pipeline"
	"erasure/store/sqlite"
	"erasure/webhook"
)

func main() {
	requests := flag.Int("requests", 5000, "requests completed, each one notification")
	workers := flag.Int("workers", 4, "concurrent POSTs, for both runs")
	flag.Parse()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "erasure-bench-notify-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	const secret = "bench-secret-0123456789"
	var received atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(secret, r.Header.Get(webhook.HeaderSignature), body, time.Now(), 0); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()

	hasher, _ := audit.NewHasher([]byte("bench-audit-key-0123456789abcdef"))
	db, err := sqlite.Open(ctx, filepath.Join(dir, "e.db"), sqlite.Options{Hasher: hasher, Chain: hasher.Chain()})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	// The requests complete first (that is the pipeline's benchmark); this one times what
	// follows: the trail read, the outbox written, the POSTs made and recorded.
	for i := 0; i < *requests; i++ {
		_, _, err := db.CreateRequest(ctx, erasure.NewRequest{ID: pipeline.NewRequestID(time.Now()), Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: fmt.Sprint(i)}),
			Reason: "bench", Deadline: time.Now().Add(time.Hour), SubmittedBy: "bench",
			Tasks: []erasure.TaskSpec{{Dataset: "a", Kind: erasure.TaskErase, Method: erasure.MethodRealtime, Keys: []string{"user_id"}}}})
		if err != nil {
			log.Fatal(err)
		}
	}
	for {
		tasks, err := db.LeaseTasks(ctx, "bench", 256, time.Minute)
		if err != nil {
			log.Fatal(err)
		}
		if len(tasks) == 0 {
			break
		}
		var rs []erasure.TaskResult
		for _, t := range tasks {
			rs = append(rs, erasure.TaskResult{TaskID: t.ID, RequestID: t.RequestID, Dataset: t.Dataset, Kind: t.Kind, Owner: "bench", Attempt: t.Attempts,
				State: erasure.TaskDone, StartedAt: time.Now(), FinishedAt: time.Now()})
		}
		if _, err := db.FinishTasks(ctx, rs); err != nil {
			log.Fatal(err)
		}
	}

	sub := webhook.New(webhook.Endpoint{Name: "bench", URL: rcv.URL + "/hook", Events: []string{erasure.NotifyRequestCompleted}, Secret: secret}, "bench")
	n := &pipeline.Notifier{Store: db, Subscribers: []erasure.Subscriber{sub}, Poll: 5 * time.Millisecond}
	d := &pipeline.Deliverer{Store: db, Subscribers: []erasure.Subscriber{sub}, Workers: *workers, Batch: 64, Poll: 5 * time.Millisecond}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(2)
	go func() { defer wg.Done(); n.Run(runCtx) }()
	go func() { defer wg.Done(); d.Run(runCtx) }()
	for received.Load() < int64(*requests) {
		time.Sleep(2 * time.Millisecond)
	}
	outboxTook := time.Since(start)
	stop()
	wg.Wait()
	delivered, _ := db.OutboxMessages(ctx, erasure.OutboxFilter{State: erasure.OutboxDelivered, Limit: 1})

	// Baseline: the same bodies, signed, POSTed by the same number of workers.
	ms, _ := db.OutboxMessages(ctx, erasure.OutboxFilter{Limit: 1000})
	received.Store(0)
	client := &http.Client{}
	jobs := make(chan int)
	start = time.Now()
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				m := ms[i%len(ms)]
				req, _ := http.NewRequest(http.MethodPost, m.URL, bytes.NewReader(m.Body))
				h, _ := sub.Headers(m, time.Now())
				for k, v := range h {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				if err != nil {
					log.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	for i := 0; i < *requests; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	rawTook := time.Since(start)

	rate := func(d time.Duration) float64 { return float64(*requests) / d.Seconds() }
	fmt.Printf("notifications  %6d request.completed through the outbox in %7.3fs  %8.0f/s  (last delivered id %d)\n", *requests, outboxTook.Seconds(), rate(outboxTook), delivered[0].ID)
	fmt.Printf("baseline       %6d signed POSTs, nothing stored     in %7.3fs  %8.0f/s\n", *requests, rawTook.Seconds(), rate(rawTook))
	fmt.Printf("outbox / baseline = %.2f\n", rate(outboxTook)/rate(rawTook))
}
