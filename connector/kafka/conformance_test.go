package kafkaconn_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"erasure"
	"erasure/connector/connectortest"
	"erasure/connector/kafka"
	"erasure/connector/kafka/kafkatest"
	"erasure/internal/testenv"
	"erasure/registry"
)

// TestConnectorContract runs the connectors' common contract (the Dispatcher's) on a kfake
// cluster; each case produces to a topic of its own.
func TestConnectorContract(t *testing.T) {
	env := kafkatest.New(t)
	connectortest.Run(t, connectortest.Target{
		Open: func(t *testing.T) *connectortest.Service {
			topic := env.Topic(testenv.Name("contract"))
			return &connectortest.Service{
				Registry: contractRegistry,
				Env:      map[string]string{"TOPIC": topic, "BROKERS": env.Brokers[0]},
				Key:      "user_id",
				Bind: func(t *testing.T, cfg *registry.Config) {
					if err := env.Conn.EnsureTopics(t.Context(), kafkaconn.Bind(cfg.Datasets, env.Conn)); err != nil {
						t.Fatalf("EnsureTopics: %v", err)
					}
				},
				Messages: func(t *testing.T, c erasure.Command) int {
					n := 0
					for _, r := range env.Records(t, topic) {
						if header(r, "dispatch") == c.Dispatch {
							n++
						}
					}
					return n
				},
			}
		},
		// Building needs no cluster; the connector is bound to a connection to a port that
		// refuses connections.
		Unreachable: func(t *testing.T, at connectortest.Nowhere) *connectortest.Service {
			return &connectortest.Service{
				Registry: contractRegistry,
				Env:      map[string]string{"TOPIC": "erasure.contract.unreachable", "BROKERS": at.Addr},
				Key:      "user_id",
				Bind: func(t *testing.T, cfg *registry.Config) {
					conn, err := kafkaconn.Connect(cfg.Kafka, nil, kafkaconn.WithKgoOptions(kgo.RecordDeliveryTimeout(2*time.Second)))
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { conn.Close() })
					kafkaconn.Bind(cfg.Datasets, conn)
				},
			}
		},
	})
}

const contractRegistry = `version: 1
identifiers: [user_id, email]
kafka: { brokers: ["${BROKERS}"] }
datasets:
  - name: notifications
    owner: messaging-team
    connector: kafka
    kafka: { topic: "${TOPIC}", identifiers: [user_id] }
`

// header returns the value of r's header key.
func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
