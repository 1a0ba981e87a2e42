package recordsconn_test

import (
	"testing"

	"erasure"
	"erasure/connector/connectortest"
	recordsconn "erasure/connector/records"
	"erasure/records"
	"erasure/registry"
)

// TestConnectorContract runs the connectors' common contract on a record store: a subject's
// record_id values are records of the source, and what remains of a subject is its live
// records.
func TestConnectorContract(t *testing.T) {
	reg := registryYAML("source: sierra\nmode: tombstone\n")
	connectortest.Run(t, connectortest.Target{
		Open: func(t *testing.T) *connectortest.Service {
			st := openStore(t)
			return &connectortest.Service{
				Registry: reg,
				Key:      "record_id",
				Bind:     func(t *testing.T, cfg *registry.Config) { recordsconn.SharedStore.Provide(cfg.Resources, st) },
				Plant: func(t *testing.T, s erasure.Subject) []erasure.Identifier {
					for _, id := range s.Values("record_id") {
						if _, _, err := st.Put(t.Context(), "sierra", records.Write{ID: id, Payload: []byte(`{"title":"x"}`)}); err != nil {
							t.Fatal(err)
						}
					}
					return nil
				},
				Remaining: func(t *testing.T, s erasure.Subject) int64 {
					var n int64
					for _, id := range s.Values("record_id") {
						rec, err := st.Get(t.Context(), "sierra", id)
						switch {
						case erasure.ErrorCode(err) == erasure.ENOTFOUND:
						case err != nil:
							t.Fatal(err)
						case !rec.Deleted:
							n++
						}
					}
					return n
				},
			}
		},
		// The server provides the store after start; until then the connector has none.
		Unreachable: func(t *testing.T, _ connectortest.Nowhere) *connectortest.Service {
			return &connectortest.Service{Registry: reg, Key: "record_id"}
		},
	})
}
