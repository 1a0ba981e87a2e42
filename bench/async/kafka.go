package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"erasure"
	"erasure/connector/kafka"
	"erasure/pipeline"
	"erasure/registry"
)

func benchKafka(ctx context.Context, dir string, seeds []string, fake bool, n, conc, inflight int, syncMode, only string) {
	where := fmt.Sprint(seeds)
	if fake {
		where = "in-process kfake cluster"
	}
	fmt.Printf("async benchmark, Kafka: %d tasks per scenario, %s, %d publishers\n", n, where, conc)
	results := map[string]time.Duration{}
	for _, sc := range []struct {
		name string
		run  func(prefix string) time.Duration
	}{
		{"raw", func(prefix string) time.Duration { return kafkaRaw(ctx, seeds, prefix, n, conc) }},
		{"connector", func(prefix string) time.Duration { return kafkaConnector(ctx, seeds, prefix, n, conc) }},
		{"pipeline", func(prefix string) time.Duration { return kafkaPipeline(ctx, dir, seeds, prefix, n, syncMode) }},
	} {
		if only != "" && only != sc.name {
			continue
		}
		d := sc.run(fmt.Sprintf("bench_%s_%d", sc.name, time.Now().UnixNano()))
		results[sc.name] = d
		line("kafka", sc.name, n, d)
	}
	report("kafka", n, results)
}

// kafkaConn connects erasure to the cluster with topics under prefix and creates them.
func kafkaConn(ctx context.Context, seeds []string, prefix string, topics ...string) *kafkaconn.Conn {
	c, err := kafkaconn.Connect(registry.Kafka{Brokers: seeds, AckTopic: prefix + ".acks", Group: prefix + "-acks", Partitions: 8},
		slog.New(slog.DiscardHandler))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.EnsureTopics(ctx, topics); err != nil {
		log.Fatal(err)
	}
	return c
}

func newClient(seeds []string, opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		log.Fatal(err)
	}
	return cl
}

// kafkaRaw: n records produced as the connector produces them (acks=all, idempotent, each
// waited for), consumed in a group that commits them.
func kafkaRaw(ctx context.Context, seeds []string, prefix string, n, conc int) time.Duration {
	topic := prefix + ".notifications"
	c := kafkaConn(ctx, seeds, prefix, topic)
	defer c.Close()
	producer := newClient(seeds, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	defer producer.Close()
	consumer := newClient(seeds, kgo.ConsumerGroup(prefix+"-raw"), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer consumer.Close()
	body := []byte(`{"task_id":1,"request_id":"r","dataset":"notifications","attempt":1,"dispatch":"0123456789abcdef0123456789abcdef","identifiers":{"user_id":"42"},"deadline":"2026-12-24T09:00:00Z","ack_topic":"x"}`)
	var consumed atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	go func() {
		for consumed.Load() < int64(n) {
			f := consumer.PollFetches(ctx)
			recs := f.Records()
			if len(recs) == 0 {
				continue
			}
			if err := consumer.CommitRecords(ctx, recs...); err != nil {
				log.Fatal(err)
			}
			consumed.Add(int64(len(recs)))
		}
		close(done)
	}()
	publishAll(n, conc, func(i int) error {
		return producer.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: body}).FirstErr()
	})
	<-done
	return time.Since(start)
}

// serveKafka is a dataset owner's service: it reads commands in a group, produces each
// acknowledgement to the ack topic, then commits the commands.
func serveKafka(ctx context.Context, seeds []string, topic string) (stop func()) {
	cl := newClient(seeds, kgo.ConsumerGroup("erasure-notifications-"+topic), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sctx.Err() == nil {
			recs := cl.PollFetches(sctx).Records()
			if len(recs) == 0 {
				continue
			}
			acks := make([]*kgo.Record, 0, len(recs))
			for _, r := range recs {
				var cmd struct {
					TaskID   int64  `json:"task_id"`
					Dispatch string `json:"dispatch"`
					AckTopic string `json:"ack_topic"`
				}
				if err := json.Unmarshal(r.Value, &cmd); err != nil {
					log.Fatal(err)
				}
				v, _ := json.Marshal(map[string]any{"task_id": cmd.TaskID, "dispatch": cmd.Dispatch, "status": "done", "removed": 1})
				acks = append(acks, &kgo.Record{Topic: cmd.AckTopic, Key: []byte(cmd.Dispatch), Value: v})
			}
			if err := cl.ProduceSync(sctx, acks...).FirstErr(); err != nil {
				if sctx.Err() != nil {
					return
				}
				log.Fatal(err)
			}
			if err := cl.CommitRecords(sctx, recs...); err != nil && sctx.Err() == nil {
				log.Fatal(err)
			}
		}
	}()
	return func() { cancel(); <-done; cl.Close() }
}

func kafkaConnector(ctx context.Context, seeds []string, prefix string, n, conc int) time.Duration {
	topic := prefix + ".notifications"
	c := kafkaConn(ctx, seeds, prefix, topic)
	defer c.Close()
	conn, err := kafkaconn.New("notifications", topic, []string{"user_id"})
	if err != nil {
		log.Fatal(err)
	}
	kafkaconn.Bind([]*erasure.Dataset{{Name: "notifications", Conn: conn}}, c)
	var applied atomic.Int64
	done := make(chan struct{})
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := c.ListenAcks(lctx, func(_ context.Context, a erasure.Ack) error {
		if a.Status == "done" && applied.Add(1) == int64(n) {
			close(done)
		}
		return nil
	}); err != nil {
		log.Fatal(err)
	}
	stop := serveKafka(ctx, seeds, topic)
	defer stop()
	deadline := time.Now().Add(720 * time.Hour)
	start := time.Now()
	publishAll(n, conc, func(i int) error {
		s := erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: strconv.Itoa(i)})
		return conn.Dispatch(ctx, erasure.Command{TaskID: int64(i + 1), RequestID: "req", Dataset: "notifications", Attempt: 1,
			Dispatch: erasure.DispatchID(benchHasher, "bench", int64(i+1), 1), SubjectKey: erasure.SubjectKey(benchHasher, s),
			Identifiers: s, Deadline: deadline})
	})
	<-done
	return time.Since(start)
}

func kafkaPipeline(ctx context.Context, dir string, seeds []string, prefix string, n int, syncMode string) time.Duration {
	topic := prefix + ".notifications"
	c := kafkaConn(ctx, seeds, prefix, topic)
	defer c.Close()
	conn, err := kafkaconn.New("notifications", topic, []string{"user_id"})
	if err != nil {
		log.Fatal(err)
	}
	return runPipeline(ctx, dir, n, syncMode, conn, func(lctx context.Context, d *erasure.Dataset, svc *pipeline.Service, applied func()) (stop func()) {
		kafkaconn.Bind([]*erasure.Dataset{d}, c)
		if err := c.ListenAcks(lctx, func(ctx context.Context, a erasure.Ack) error {
			if _, err := svc.AckByDispatch(ctx, a, "bench"); err != nil {
				return err
			}
			applied()
			return nil
		}); err != nil {
			log.Fatal(err)
		}
		return serveKafka(ctx, seeds, topic)
	})
}
