// Command async measures erasure's async path next to raw JetStream, in one run on one server:
//
//	raw        N messages published through JetStream (waiting for each PubAck), consumed with a
//	           pull consumer and acknowledged (msg.Ack): the floor for anything on JetStream;
//	connector  N commands dispatched by the nats connector, consumed by mutator (handler
//	           returns at once), acknowledged back on the ack subject and applied by the ack
//	           listener (counting callback);
//	pipeline   N erasure requests with one async dataset submitted to the pipeline (SQLite
//	           store, executor, service), dispatched, consumed by mutator, acknowledged and
//	           applied through Service.Ack until every request is completed.
//
// Usage:
//
//	go run ./bench/async                   # embedded NATS server in a temp dir
//	go run ./bench/async -url nats://127.0.0.1:4222 -n 10000
//
// Each scenario uses its own stream, deleted afterwards. It prints tasks per second and the
// ratio to raw.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"erasure"
	"erasure/audit"
	"erasure/connector/nats"
	"erasure/mutator"
	"erasure/pipeline"
	"erasure/registry"
	"erasure/store/sqlite"
)

func main() {
	n := flag.Int("n", 10000, "tasks (messages) per scenario")
	url := flag.String("url", "", "NATS URL; empty starts an embedded server")
	conc := flag.Int("publishers", 16, "concurrent publishers (raw, connector)")
	inflight := flag.Int("inflight", 64, "mutator MaxInFlight and raw pull batch")
	syncMode := flag.String("sync", "NORMAL", "SQLite synchronous pragma for the pipeline scenario (FULL or NORMAL)")
	only := flag.String("only", "", "run only raw, connector or pipeline")
	flag.Parse()

	dir, err := os.MkdirTemp("", "erasure-bench-async-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)

	// One Conn for the server (embedded or external); each scenario has its own stream.
	open := func(stream string) *natsconn.Conn {
		cfg := registry.NATS{URL: *url, Port: -1, Stream: stream}
		c, err := natsconn.Connect(cfg, filepath.Join(dir, stream), quiet, natsconn.WithAckPrefix("bench_"+stream+".ack"))
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	where := *url
	if where == "" {
		where = "embedded server"
	}
	fmt.Printf("async benchmark: %d tasks per scenario, %s, %d publishers, in flight %d\n", *n, where, *conc, *inflight)

	results := map[string]time.Duration{}
	for _, sc := range []struct {
		name string
		run  func(*natsconn.Conn, string) time.Duration
	}{
		{"raw", func(c *natsconn.Conn, subj string) time.Duration { return raw(ctx, c, subj, *n, *conc, *inflight) }},
		{"connector", func(c *natsconn.Conn, subj string) time.Duration {
			return connector(ctx, c, subj, *n, *conc, *inflight)
		}},
		{"pipeline", func(c *natsconn.Conn, subj string) time.Duration {
			return throughPipeline(ctx, c, subj, dir, *n, *inflight, *syncMode)
		}},
	} {
		if *only != "" && *only != sc.name {
			continue
		}
		stream := fmt.Sprintf("BENCH_%s_%d", sc.name, time.Now().UnixNano())
		c := open(stream)
		d := sc.run(c, "bench_"+stream+".notifications")
		_ = c.DeleteStream(ctx)
		c.Close()
		results[sc.name] = d
		fmt.Printf("%-10s %8d tasks in %8.3fs  %9.0f tasks/s\n", sc.name, *n, d.Seconds(), float64(*n)/d.Seconds())
	}
	if r, ok := results["raw"]; ok {
		for _, name := range []string{"connector", "pipeline"} {
			if d, ok := results[name]; ok {
				fmt.Printf("ratio %s/raw: %.2f of raw throughput (%.1fx slower)\n", name, r.Seconds()/d.Seconds(), d.Seconds()/r.Seconds())
			}
		}
	}
}

// publishAll runs publish(i) for i in [0,n) on conc goroutines.
func publishAll(n, conc int, publish func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := publish(i); err != nil {
					log.Fatalf("publish %d: %v", i, err)
				}
			}
		}()
	}
	wg.Wait()
}

func raw(ctx context.Context, c *natsconn.Conn, subject string, n, conc, batch int) time.Duration {
	if err := c.EnsureStream(ctx, []string{subject}); err != nil {
		log.Fatal(err)
	}
	js := c.JetStream()
	cons, err := js.CreateOrUpdateConsumer(ctx, c.Stream(), jetstream.ConsumerConfig{
		Durable: "raw", FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: batch * 4,
	})
	if err != nil {
		log.Fatal(err)
	}
	body := []byte(`{"task_id":1,"request_id":"r","dataset":"notifications","attempt":1,"identifiers":{"user_id":"42"},"deadline":"2026-12-24T09:00:00Z","ack_subject":"x"}`)
	var acked atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if err := m.Ack(); err != nil {
			log.Fatal(err)
		}
		if acked.Add(1) == int64(n) {
			close(done)
		}
	}, jetstream.PullMaxMessages(batch))
	if err != nil {
		log.Fatal(err)
	}
	publishAll(n, conc, func(i int) error {
		_, err := js.Publish(ctx, subject, body, jetstream.WithMsgID(strconv.Itoa(i)+"-1"))
		return err
	})
	<-done
	d := time.Since(start)
	cc.Stop()
	return d
}

// client opens a separate connection for the mutator, as a service would have.
func client(c *natsconn.Conn) (*nats.Conn, jetstream.JetStream) {
	nc, err := nats.Connect(c.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	return nc, js
}

func startMutator(ctx context.Context, c *natsconn.Conn, subject string, inflight int) (stop func()) {
	nc, js := client(c)
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := mutator.Run(mctx, js, "notifications", func(context.Context, mutator.Command) (int64, error) { return 1, nil },
			mutator.Subject(subject), mutator.MaxInFlight(inflight), mutator.Logger(slog.New(slog.DiscardHandler)))
		if err != nil {
			log.Fatal(err)
		}
	}()
	return func() { cancel(); <-done; nc.Close() }
}

func connector(ctx context.Context, c *natsconn.Conn, subject string, n, conc, inflight int) time.Duration {
	conn, err := natsconn.New("notifications", subject, []string{"user_id"})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.EnsureStream(ctx, natsconn.Bind([]*erasure.Dataset{{Name: "notifications", Conn: conn}}, c)); err != nil {
		log.Fatal(err)
	}
	var applied atomic.Int64
	done := make(chan struct{})
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = c.ListenAcks(lctx, func(_ context.Context, _ string, a erasure.Ack) error {
		if a.Status == "done" && applied.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	stop := startMutator(ctx, c, subject, inflight)
	defer stop()
	deadline := time.Now().Add(720 * time.Hour)
	start := time.Now()
	publishAll(n, conc, func(i int) error {
		return conn.Dispatch(ctx, erasure.Command{TaskID: int64(i + 1), RequestID: "req", Dataset: "notifications", Attempt: 1,
			Identifiers: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: strconv.Itoa(i)}), Deadline: deadline})
	})
	<-done
	return time.Since(start)
}

func throughPipeline(ctx context.Context, c *natsconn.Conn, subject, dir string, n, inflight int, syncMode string) time.Duration {
	h, err := audit.NewHasher([]byte("bench-key-0123456789abcdef"))
	if err != nil {
		log.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "pipeline.db"), sqlite.Options{Hasher: h, Chain: h.Chain(), Synchronous: syncMode})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	conn, err := natsconn.New("notifications", subject, []string{"user_id"})
	if err != nil {
		log.Fatal(err)
	}
	d := &erasure.Dataset{Name: "notifications", Owner: "bench", Connector: "nats", Method: erasure.MethodAsync, Keys: []string{"user_id"},
		Policy: erasure.Policy{Deadline: 720 * time.Hour, MaxAttempts: 5, Backoff: erasure.Backoff{Initial: time.Second, Max: time.Minute},
			Timeout: 30 * time.Second, AckTimeout: time.Hour}, Conn: conn}
	if err := c.EnsureStream(ctx, natsconn.Bind([]*erasure.Dataset{d}, c)); err != nil {
		log.Fatal(err)
	}
	eng := &pipeline.Engine{Store: st, Datasets: map[string]*erasure.Dataset{d.Name: d}, Workers: 16, Poll: 5 * time.Millisecond}
	svc := &pipeline.Service{Store: st, Hasher: h, Chain: h.Chain(), Registered: []*erasure.Dataset{d}, Identifiers: []string{"user_id"}, DefaultDeadline: 720 * time.Hour, Engine: eng}
	var applied atomic.Int64
	done := make(chan struct{})
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = c.ListenAcks(lctx, func(ctx context.Context, ds string, a erasure.Ack) error {
		if _, err := svc.Ack(ctx, ds, a, "bench"); err != nil {
			return err
		}
		if applied.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	stop := startMutator(ctx, c, subject, inflight)
	defer stop()
	engDone := make(chan struct{})
	go func() { eng.Run(lctx); close(engDone) }()
	defer func() { cancel(); <-engDone }()

	start := time.Now()
	publishAll(n, 8, func(i int) error {
		_, _, err := svc.Submit(ctx, erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: strconv.Itoa(i)}),
			Reason: "bench", Actor: "bench"})
		return err
	})
	submitted := time.Since(start)
	<-done
	elapsed := time.Since(start)
	fmt.Printf("pipeline: %d requests submitted in %.3fs; every ack applied %.3fs later\n", n, submitted.Seconds(), (elapsed - submitted).Seconds())
	stats, err := st.DatasetStats(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range stats {
		if s.ByState["done"] != n {
			log.Fatalf("pipeline: %d tasks done, want %d (%v)", s.ByState["done"], n, s.ByState)
		}
	}
	return elapsed
}
