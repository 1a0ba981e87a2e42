package natsconn_test

import (
	"encoding/json"
	"testing"

	"erasure"
	"erasure/connector/connectortest"
	natsconn "erasure/connector/nats"
	"erasure/connector/nats/natstest"
	"erasure/internal/testenv"
	"erasure/registry"
)

// TestConnectorContract runs the connectors' common contract (the Dispatcher's) on the
// embedded NATS server and on the one at ERASURE_TEST_NATS. Each case publishes on a subject of
// its own in the environment's stream.
func TestConnectorContract(t *testing.T) {
	natstest.Each(t, func(t *testing.T, env *natstest.Env) {
		connectortest.Run(t, connectortest.Target{
			Open: func(t *testing.T) *connectortest.Service {
				subject := env.Subject(testenv.Name("contract"))
				return &connectortest.Service{
					Registry: contractRegistry,
					Env:      map[string]string{"SUBJECT": subject},
					Key:      "user_id",
					Bind: func(t *testing.T, cfg *registry.Config) {
						if err := env.Conn.EnsureStream(t.Context(), natsconn.Bind(cfg.Datasets, env.Conn)); err != nil {
							t.Fatalf("EnsureStream: %v", err)
						}
					},
					Messages: func(t *testing.T, c erasure.Command) int {
						n := 0
						for _, m := range stored(t, env, subject) {
							var got struct {
								Dispatch string `json:"dispatch"`
							}
							if err := json.Unmarshal(m.Data(), &got); err != nil {
								t.Fatalf("a stored command is not JSON: %v", err)
							}
							if got.Dispatch == c.Dispatch {
								n++
							}
						}
						return n
					},
				}
			},
			// Building needs no server; the connector is bound to a connection whose server
			// has gone away.
			Unreachable: func(t *testing.T, _ connectortest.Nowhere) *connectortest.Service {
				return &connectortest.Service{
					Registry: contractRegistry,
					Env:      map[string]string{"SUBJECT": "erasure.contract.unreachable"},
					Key:      "user_id",
					Bind: func(t *testing.T, cfg *registry.Config) {
						conn, err := natsconn.Connect(registry.NATS{Port: -1, Stream: testenv.Name("GONE")}, t.TempDir(), nil)
						if err != nil {
							t.Fatal(err)
						}
						natsconn.Bind(cfg.Datasets, conn)
						conn.Close()
					},
				}
			},
		})
	})
}

const contractRegistry = `version: 1
identifiers: [user_id, email]
datasets:
  - name: notifications
    owner: messaging-team
    connector: nats
    nats: { subject: "${SUBJECT}", identifiers: [user_id] }
`
