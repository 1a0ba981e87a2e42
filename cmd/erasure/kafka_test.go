package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"erasure"
	"erasure/server"
)

const kafkaConfig = `version: 1
server: { data_dir: %q }
kafka: { brokers: [%q], ack_topic: erasure.acks }
identifiers: [user_id]
datasets:
  - name: notifications
    owner: messaging-team
    connector: kafka
    kafka: { topic: erasure.notifications, identifiers: [user_id] }
`

// TestServe_Kafka runs the server with an async dataset on a kfake cluster: serve creates the
// topics, the command reaches the topic, and the service's acknowledgement completes the
// request. Then `datasets check` finds the topic.
func TestServe_Kafka(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	broker := cluster.ListenAddrs()[0]
	path := writeConfig(t, fmt.Sprintf(kafkaConfig, filepath.Join(t.TempDir(), "data"), broker))
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := server.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if a.NATS != nil {
		t.Error("the embedded NATS server was started for a registry without nats datasets")
	}
	r, _, err := a.Service.Submit(ctx, erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "42"}), Reason: "user_request", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}

	// The notifications service.
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumerGroup("erasure-notifications"), kgo.ConsumeTopics("erasure.notifications"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	var rec *kgo.Record
	for rec == nil && pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { rec = r })
	}
	if rec == nil {
		t.Fatal("no command reached the topic")
	}
	var cmd struct {
		TaskID   int64  `json:"task_id"`
		Dispatch string `json:"dispatch"`
		AckTopic string `json:"ack_topic"`
	}
	if err := json.Unmarshal(rec.Value, &cmd); err != nil || cmd.AckTopic != "erasure.acks" {
		t.Fatalf("command %s: %v", rec.Value, err)
	}
	ack := fmt.Sprintf(`{"task_id":%d,"dispatch":%q,"status":"done","removed":2}`, cmd.TaskID, cmd.Dispatch)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: cmd.AckTopic, Key: []byte(cmd.Dispatch), Value: []byte(ack)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for {
		got, err := a.Service.Request(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == erasure.RequestCompleted {
			if got.Tasks[0].Removed != 2 {
				t.Errorf("task removed %d, want 2", got.Tasks[0].Removed)
			}
			break
		}
		if pctx.Err() != nil {
			t.Fatalf("request %s after the acknowledgement", got.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}

	code, stdout, stderr := run(t, "datasets", "check", path)
	if code != 0 || !regexp.MustCompile(`notifications\s+kafka\s+ok`).MatchString(stdout) {
		t.Errorf("datasets check: exit %d\n%s%s", code, stdout, stderr)
	}
	missing := writeConfig(t, strings.Replace(fmt.Sprintf(kafkaConfig, filepath.Join(t.TempDir(), "data"), broker), "topic: erasure.notifications", "topic: erasure.missing", 1))
	code, stdout, stderr = run(t, "datasets", "check", missing)
	if code != 6 || !regexp.MustCompile(`notifications\s+kafka\s+FAILED.*erasure.missing`).MatchString(stdout) {
		t.Errorf("datasets check of a topic that does not exist: exit %d\n%s%s", code, stdout, stderr)
	}
}
