package main

import (
	"context"

	"erasure"
	kafkaconn "erasure/connector/kafka"
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
