package server

import (
	"context"
	"log/slog"

	"erasure"
	"erasure/pipeline"
	"erasure/webhook"
)

// openNotifications builds the notifier and the deliverer, with a webhook subscriber for every
// `notify:` entry of the configuration.
func (s *Server) openNotifications(log *slog.Logger, m *pipeline.Metrics) {
	s.Notifications = &pipeline.Notifier{Store: s.Store, Logger: log.WithGroup("notify"), Metrics: m}
	s.Deliveries = &pipeline.Deliverer{Store: s.Store, Logger: log.WithGroup("notify"), Metrics: m}
	for _, n := range s.Config.Notify {
		s.Subscribe(webhook.New(webhook.Endpoint{Name: n.Name, URL: n.URL, Events: n.Events, Secret: n.Secret,
			MaxAttempts: n.MaxAttempts, Backoff: n.Backoff, Timeout: n.Timeout}, s.Deployment))
	}
}

// Subscribe adds a subscriber to the notifier and the deliverer (webhooks are added by Open,
// from the configuration). Call it before Start.
func (s *Server) Subscribe(sub erasure.Subscriber) {
	s.Notifications.Subscribers = append(s.Notifications.Subscribers, sub)
	s.Deliveries.Subscribers = append(s.Deliveries.Subscribers, sub)
}

// Notifier reads the audit trail after its cursor and stores the messages its events cause
// for the subscribers, in the outbox. It must run on one process (a leader); a second one
// would only lose the race for the cursor.
type Notifier struct {
	Notifier *pipeline.Notifier
	group
}

// Notifier returns the notifier component of s.
func (s *Server) Notifier() *Notifier { return &Notifier{Notifier: s.Notifications} }

// Start notifies until ctx is cancelled.
func (n *Notifier) Start(ctx context.Context) error {
	n.goRun(func() { n.Notifier.Run(ctx) })
	return nil
}

// Deliverer POSTs the outbox's messages, retrying with backoff; it may run on every process
// (messages are leased).
type Deliverer struct {
	Deliverer *pipeline.Deliverer
	group
}

// Deliverer returns the deliverer component of s.
func (s *Server) Deliverer() *Deliverer { return &Deliverer{Deliverer: s.Deliveries} }

// Start delivers until ctx is cancelled; the POSTs in flight finish and are recorded.
func (d *Deliverer) Start(ctx context.Context) error {
	d.goRun(func() { d.Deliverer.Run(ctx) })
	return nil
}
