// Package kafkatest runs tests of the kafka connector against kfake: an in-process Kafka
// cluster that speaks the Kafka wire protocol on loopback, so that the connector's franz-go
// clients talk to it exactly as they would to a production broker (no Kafka broker is packaged
// for the machines the tests run on). Every Env has its own cluster.
package kafkatest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"erasure/connector/kafka"
	"erasure/connector/nats/natstest"
	"erasure/internal/testenv"
	"erasure/registry"
)

// Env is one cluster and erasure's connection to it.
type Env struct {
	Cluster *kfake.Cluster
	Brokers []string
	Conn    *kafkaconn.Conn
	// Config is the `kafka:` section Conn was made from; Prefix starts the env's topic names.
	Config registry.Kafka
	Prefix string
	Logs   *natstest.Recorder
}

// New starts a cluster of three brokers for the test and connects to it with opts.
func New(t testing.TB, opts ...kafkaconn.Option) *Env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	e := &Env{Cluster: c, Brokers: c.ListenAddrs(), Prefix: testenv.Name("t"), Logs: &natstest.Recorder{}}
	e.Config = registry.Kafka{Brokers: e.Brokers, AckTopic: e.Prefix + ".acks", Partitions: 3}
	e.Conn = e.Connect(t, e.Config, opts...)
	return e
}

// Connect opens another connection to the cluster (another deployment), closed at the end of
// the test, logging to e.Logs.
func (e *Env) Connect(t testing.TB, cfg registry.Kafka, opts ...kafkaconn.Option) *kafkaconn.Conn {
	t.Helper()
	conn, err := kafkaconn.Connect(cfg, slog.New(e.Logs), opts...)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Topic returns a topic name private to this environment.
func (e *Env) Topic(name string) string { return e.Prefix + "." + name }

// Client returns a plain franz-go client of the cluster, closed at the end of the test.
func (e *Env) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.Brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Records returns every record of topic, reading it from the start without a group.
func (e *Env) Records(t testing.TB, topic string) []*kgo.Record {
	t.Helper()
	cl := e.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	var out []*kgo.Record
	quiet := 0
	for quiet < 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		f := cl.PollFetches(ctx)
		cancel()
		n := 0
		f.EachRecord(func(r *kgo.Record) { out = append(out, r); n++ })
		if n == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	return out
}

// Produce produces value to topic with key, as a service would, and waits for the cluster's
// acknowledgement.
func (e *Env) Produce(t testing.TB, topic, key, value string) {
	t.Helper()
	cl := e.Client(t)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatalf("producing to %s: %v", topic, err)
	}
}
