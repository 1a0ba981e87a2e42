// Command async measures erasure's async path next to the raw transport, in one run, for
// NATS JetStream and for Kafka:
//
//	nats raw         N messages published through JetStream (waiting for each PubAck),
//	                 consumed with a pull consumer and acknowledged (msg.Ack): the floor for
//	                 anything on JetStream;
//	nats connector   N commands dispatched by the nats connector, consumed by mutator as the
//	                 dataset's own user (handler returns at once), acknowledged back on the ack
//	                 subject and applied by the ack listener (counting callback);
//	nats pipeline    N erasure requests with one async dataset submitted to the pipeline
//	                 (SQLite store, executor, service), dispatched, consumed by mutator,
//	                 acknowledged and applied through Service.Ack until every request is
//	                 completed;
//	kafka raw        N records produced (acks=all, idempotent, waiting for each) and consumed
//	                 in a consumer group that commits them: the floor for anything on Kafka;
//	kafka connector  N commands dispatched by the kafka connector, consumed in a group by a
//	                 service loop that produces each acknowledgement to the ack topic and
//	                 commits, applied by the ack listener (counting callback);
//	kafka pipeline   the nats pipeline scenario on Kafka, acknowledgements applied through
//	                 Service.AckByDispatch.
//
// Usage:
//
//	go run ./bench/async                   # embedded NATS server and an in-process kfake cluster
//	go run ./bench/async -url nats://127.0.0.1:4222 -brokers kafka-1:9092 -n 10000
//	go run ./bench/async -transport kafka -only pipeline
//
// Each scenario uses its own stream or topics. kfake is an in-process broker speaking the
// Kafka protocol over loopback (no Kafka broker is packaged for these machines): its figures
// measure erasure's clients and protocol round trips, not a production cluster's disks. It
// prints tasks per second and the ratio to the raw scenario of the same transport.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"

	"erasure"
	"erasure/audit"
	"erasure/connector/nats"
	"erasure/mutator"
	"erasure/pipeline"
	"erasure/registry"
	"erasure/store/sqlite"
)

// intake is how the pipeline scenarios submit their requests (-intake).
var intake string

func main() {
	n := flag.Int("n", 10000, "tasks (messages) per scenario")
	url := flag.String("url", "", "NATS URL; empty starts an embedded server")
	brokers := flag.String("brokers", "", "Kafka seed broker(s), comma-separated; empty starts an in-process kfake cluster")
	conc := flag.Int("publishers", 16, "concurrent publishers (raw, connector)")
	inflight := flag.Int("inflight", 64, "mutator MaxInFlight and raw pull batch")
	syncMode := flag.String("sync", "NORMAL", "SQLite synchronous pragma for the pipeline scenario (FULL or NORMAL)")
	transport := flag.String("transport", "", "run only nats or kafka")
	only := flag.String("only", "", "run only raw, connector or pipeline")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
	flag.StringVar(&intake, "intake", "single", "how the pipeline scenario's requests go in: single (Submit, one per call, 8 submitters) or batch (SubmitBatch, 1,000 per call)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}

	dir, err := os.MkdirTemp("", "erasure-bench-async-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	if *transport == "" || *transport == "nats" {
		benchNATS(ctx, dir, *url, *n, *conc, *inflight, *syncMode, *only)
	}
	if *transport == "" || *transport == "kafka" {
		seeds := strings.Split(*brokers, ",")
		if *brokers == "" {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(8))
			if err != nil {
				log.Fatal(err)
			}
			defer cluster.Close()
			seeds = cluster.ListenAddrs()
		}
		benchKafka(ctx, dir, seeds, *brokers == "", *n, *conc, *inflight, *syncMode, *only)
	}
}

// report prints the results of one transport and each scenario's ratio to raw.
func report(transport string, n int, results map[string]time.Duration) {
	if r, ok := results["raw"]; ok {
		for _, name := range []string{"connector", "pipeline"} {
			if d, ok := results[name]; ok {
				fmt.Printf("ratio %s %s/raw: %.2f of raw throughput (%.1fx slower)\n", transport, name, r.Seconds()/d.Seconds(), d.Seconds()/r.Seconds())
			}
		}
	}
}

func line(transport, name string, n int, d time.Duration) {
	fmt.Printf("%-6s %-10s %8d tasks in %8.3fs  %9.0f tasks/s\n", transport, name, n, d.Seconds(), float64(n)/d.Seconds())
}

func benchNATS(ctx context.Context, dir, url string, n, conc, inflight int, syncMode, only string) {
	quiet := slog.New(slog.DiscardHandler)
	// One Conn per scenario (embedded server or external); each scenario has its own stream.
	open := func(stream string) *natsconn.Conn {
		cfg := registry.NATS{URL: url, Port: -1, Stream: stream}
		c, err := natsconn.Connect(cfg, filepath.Join(dir, stream), quiet, natsconn.WithAckPrefix("bench_"+stream+".ack"), natsconn.WithAckParallel(natsconn.AckParallel))
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	where := url
	if where == "" {
		where = "embedded server"
	}
	fmt.Printf("async benchmark, NATS: %d tasks per scenario, %s, %d publishers, in flight %d\n", n, where, conc, inflight)
	results := map[string]time.Duration{}
	for _, sc := range []struct {
		name string
		run  func(*natsconn.Conn, string) time.Duration
	}{
		{"raw", func(c *natsconn.Conn, subj string) time.Duration { return raw(ctx, c, subj, n, conc, inflight) }},
		{"connector", func(c *natsconn.Conn, subj string) time.Duration { return connector(ctx, c, subj, n, conc, inflight) }},
		{"pipeline", func(c *natsconn.Conn, subj string) time.Duration {
			return throughPipeline(ctx, c, subj, dir, n, inflight, syncMode)
		}},
	} {
		if only != "" && only != sc.name {
			continue
		}
		stream := fmt.Sprintf("BENCH_%s_%d", sc.name, time.Now().UnixNano())
		c := open(stream)
		d := sc.run(c, "bench_"+stream+".notifications")
		_ = c.DeleteStream(ctx)
		c.Close()
		results[sc.name] = d
		line("nats", sc.name, n, d)
	}
	report("nats", n, results)
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

// client opens a separate connection for the mutator, as a service would have: with the
// dataset's credentials on the embedded server.
func client(c *natsconn.Conn) (*nats.Conn, jetstream.JetStream) {
	var opts []nats.Option
	if creds, err := c.Credentials("notifications"); err == nil {
		opts = creds.Options()
	}
	nc, err := nats.Connect(c.ClientURL(), opts...)
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
			mutator.Subject(subject), mutator.Stream(c.Stream()), mutator.MaxInFlight(inflight), mutator.Logger(slog.New(slog.DiscardHandler)))
		if err != nil {
			log.Fatal(err)
		}
	}()
	return func() { cancel(); <-done; nc.Close() }
}

// benchHasher names the bench's dispatches.
var benchHasher = func() *audit.Hasher {
	h, err := audit.NewHasher([]byte("bench-key-0123456789abcdef"))
	if err != nil {
		log.Fatal(err)
	}
	return h
}()

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
			Dispatch:    erasure.DispatchID(benchHasher, "bench", int64(i+1), 1),
			Identifiers: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: strconv.Itoa(i)}), Deadline: deadline})
	})
	<-done
	return time.Since(start)
}

func throughPipeline(ctx context.Context, c *natsconn.Conn, subject, dir string, n, inflight int, syncMode string) time.Duration {
	conn, err := natsconn.New("notifications", subject, []string{"user_id"})
	if err != nil {
		log.Fatal(err)
	}
	return runPipeline(ctx, dir, n, syncMode, conn, func(lctx context.Context, d *erasure.Dataset, svc *pipeline.Service, applied func()) (stop func()) {
		if err := c.EnsureStream(ctx, natsconn.Bind([]*erasure.Dataset{d}, c)); err != nil {
			log.Fatal(err)
		}
		err = c.ListenAcks(lctx, func(ctx context.Context, ds string, a erasure.Ack) error {
			if _, err := svc.Ack(ctx, ds, a, "bench"); err != nil {
				return err
			}
			applied()
			return nil
		})
		if err != nil {
			log.Fatal(err)
		}
		return startMutator(ctx, c, subject, inflight)
	})
}

// listen binds the dataset, starts the acknowledgement listener (calling applied for each ack
// applied) and the owner's service; it returns what stops the service.
type listen func(lctx context.Context, d *erasure.Dataset, svc *pipeline.Service, applied func()) (stop func())

// runPipeline submits n requests to a pipeline with one async dataset on conn and returns the
// time until every acknowledgement was applied.
func runPipeline(ctx context.Context, dir string, n int, syncMode string, conn erasure.Connector, start listen) time.Duration {
	h := benchHasher
	st, err := sqlite.Open(ctx, filepath.Join(dir, fmt.Sprintf("pipeline-%d.db", time.Now().UnixNano())), sqlite.Options{Hasher: h, Chain: h.Chain(), Synchronous: syncMode})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	d := &erasure.Dataset{Name: "notifications", Owner: "bench", Connector: "async", Method: erasure.MethodAsync, Keys: []string{"user_id"},
		Policy: erasure.Policy{Deadline: 720 * time.Hour, MaxAttempts: 5, Backoff: erasure.Backoff{Initial: time.Second, Max: time.Minute},
			Timeout: 30 * time.Second, AckTimeout: time.Hour}, Conn: conn}
	eng := &pipeline.Engine{Store: st, Datasets: map[string]*erasure.Dataset{d.Name: d}, Workers: 16, Poll: 5 * time.Millisecond, Hasher: h}
	svc := &pipeline.Service{Store: st, Hasher: h, Chain: h.Chain(), Registered: []*erasure.Dataset{d}, Identifiers: []string{"user_id"}, DefaultDeadline: 720 * time.Hour, Engine: eng}
	var applied atomic.Int64
	done := make(chan struct{})
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := start(lctx, d, svc, func() {
		if applied.Add(1) == int64(n) {
			close(done)
		}
	})
	defer stop()
	engDone := make(chan struct{})
	go func() { eng.Run(lctx); close(engDone) }()
	defer func() { cancel(); <-engDone }()

	sub := func(i int) erasure.Submission {
		return erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: strconv.Itoa(i)}), Reason: "bench", Actor: "bench"}
	}
	begin := time.Now()
	switch intake {
	case "single":
		publishAll(n, 8, func(i int) error {
			_, _, err := svc.Submit(ctx, sub(i))
			return err
		})
	case "batch":
		const per = 1000
		for start := 0; start < n; start += per {
			subs := make([]erasure.Submission, 0, per)
			for i := start; i < min(n, start+per); i++ {
				subs = append(subs, sub(i))
			}
			res, err := svc.SubmitBatch(ctx, subs)
			if err != nil {
				log.Fatal(err)
			}
			for _, r := range res {
				if r.Err != nil {
					log.Fatal(r.Err)
				}
			}
		}
	default:
		log.Fatalf("-intake %q: want single or batch", intake)
	}
	submitted := time.Since(begin)
	<-done
	elapsed := time.Since(begin)
	fmt.Printf("pipeline: %d requests submitted (intake %s) in %.3fs; every ack applied %.3fs later\n", n, intake, submitted.Seconds(), (elapsed - submitted).Seconds())
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
