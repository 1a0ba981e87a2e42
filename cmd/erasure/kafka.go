package main

import (
	"context"
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

// startKafka connects to the configured Kafka cluster when a dataset uses it, binds the kafka
// datasets, creates their topics and starts reading acknowledgements, each bound to its task
// by its dispatch id (pipeline.Service.AckByDispatch).
func (a *app) startKafka(ctx context.Context) error {
	if !hasKafka(a.cfg.Datasets) {
		return nil
	}
	deployment, err := a.store.Deployment(ctx)
	if err != nil {
		return err
	}
	a.kafka, err = kafkaconn.Connect(a.cfg.Kafka, a.log, kafkaconn.WithDeployment(deployment))
	if err != nil {
		return err
	}
	if err := a.kafka.EnsureTopics(ctx, kafkaconn.Bind(a.cfg.Datasets, a.kafka)); err != nil {
		return err
	}
	if err := a.kafka.ListenAcks(ctx, func(ctx context.Context, ack erasure.Ack) error {
		_, err := a.svc.AckByDispatch(ctx, ack, "kafka")
		return err
	}); err != nil {
		return err
	}
	a.log.Info("kafka ready", "ack_topic", a.kafka.AckTopic(), "group", a.kafka.AckGroup())
	return nil
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
