package main

import (
	"log/slog"

	"erasure"
	kafkaconn "erasure/connector/kafka"
	"erasure/registry"
)

// hasKafka reports whether any dataset is erased through Kafka.
func hasKafka(ds []*erasure.Dataset) bool {
	for _, d := range ds {
		if _, ok := d.Conn.(*kafkaconn.Connector); ok {
			return true
		}
	}
	return false
}

// bindKafka binds the kafka datasets of cfg to a connection to the configured cluster, for
// `datasets check` (their Check asks the cluster whether their topic exists), and returns
// what closes it; nil when no dataset uses Kafka or the configuration is unusable (the checks
// then say the datasets are not bound).
func bindKafka(cfg *registry.Config) (closeConn func()) {
	if !hasKafka(cfg.Datasets) {
		return nil
	}
	conn, err := kafkaconn.Connect(cfg.Kafka, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil
	}
	kafkaconn.Bind(cfg.Datasets, conn)
	return func() { conn.Close() }
}
