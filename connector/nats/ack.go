package natsconn

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"erasure"
)

// ApplyFunc applies one decoded acknowledgement of dataset. The server wires it to
// erasure.Service.Ack. Its error decides the message's fate: an *erasure.Error with code
// EINVALID, ENOTFOUND, ECONFLICT or EFORBIDDEN rejects the acknowledgement for good (logged,
// never retried); any other error is taken as a passing failure (the store is down) and the
// acknowledgement is delivered again after AckRetryDelay.
type ApplyFunc func(ctx context.Context, dataset string, ack erasure.Ack) error

// AckParallel is how many acknowledgements the server applies at once (WithAckParallel).
const AckParallel = 1024

// AckRetryDelay is how long an acknowledgement whose apply failed for a passing reason waits
// before it is delivered again.
const AckRetryDelay = 2 * time.Second

var datasetRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

// ListenAcks starts reading acknowledgements from the stream (subjects prefix.<dataset>, see
// AckSubject) with a durable pull consumer, so that acks published while the server is down
// are applied when it comes back, and several servers share them. Each message is decoded with
// DecodeAck; a malformed one (bad JSON, unknown field, missing task_id, bad status) or one on a
// subject naming no valid dataset is logged (never with its content) and dropped without
// calling apply. apply is called for the others one at a time, in stream order, or up to n
// at once with WithAckParallel(n), each message acknowledged on its own.
//
// ListenAcks returns once the consumer is reading; it stops when ctx is cancelled or the Conn
// is closed. It needs the stream (EnsureStream). Errors: EUNAVAILABLE when JetStream does not
// answer.
func (c *Conn) ListenAcks(ctx context.Context, apply ApplyFunc) error {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.stream, jetstream.ConsumerConfig{
		Durable:       c.ackName,
		Description:   "erasure: acknowledgements of async tasks",
		FilterSubject: c.ackPrefix + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxAckPending: 1024,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "nats: ack consumer on %s: %v", c.stream, err)
	}
	// apply may outlive ctx's cancellation only for the messages at hand.
	applyCtx := context.WithoutCancel(ctx)
	handle := func(m jetstream.Msg) { c.handleAck(applyCtx, m, apply) }
	if c.ackParallel > 1 {
		slots := make(chan struct{}, c.ackParallel)
		handle = func(m jetstream.Msg) {
			slots <- struct{}{}
			go func() {
				defer func() { <-slots }()
				c.handleAck(applyCtx, m, apply)
			}()
		}
	}
	cc, err := cons.Consume(handle,
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrConnectionClosed) {
				c.log.Warn("ack consumer", "err", err)
			}
		}))
	if err != nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "nats: reading acks: %v", err)
	}
	c.mu.Lock()
	c.listeners = append(c.listeners, cc)
	c.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			cc.Stop()
		case <-cc.Closed():
		}
	}()
	return nil
}

func (c *Conn) handleAck(ctx context.Context, m jetstream.Msg, apply ApplyFunc) {
	dataset := strings.TrimPrefix(m.Subject(), c.ackPrefix+".")
	if !datasetRE.MatchString(dataset) {
		c.log.Warn("acknowledgement rejected", "reason", "subject names no valid dataset")
		c.term(m, "bad subject")
		return
	}
	ack, err := DecodeAck(m.Data())
	if err != nil {
		c.log.Warn("acknowledgement rejected", "dataset", dataset, "reason", erasure.ErrorMessage(err))
		c.term(m, "malformed")
		return
	}
	err = apply(ctx, dataset, ack)
	switch erasure.ErrorCode(err) {
	case "":
		c.log.Debug("acknowledgement applied", "dataset", dataset, "task_id", ack.TaskID, "status", ack.Status)
		if err := m.Ack(); err != nil {
			c.log.Warn("acknowledging an ack message", "err", err)
		}
	case erasure.ENOTFOUND:
		// An unknown task, another dataset's, or a dispatch id that names no dispatch of this
		// deployment (another deployment's command, or a forgery): nothing of it is logged
		// but the dataset, so that the log cannot be used to probe tasks.
		c.log.Warn("acknowledgement rejected", "dataset", dataset, "reason", "it answers no command of this deployment")
		c.term(m, erasure.ErrorCode(err))
	case erasure.EINVALID, erasure.ECONFLICT, erasure.EFORBIDDEN:
		c.log.Warn("acknowledgement rejected", "dataset", dataset, "task_id", ack.TaskID, "reason", erasure.ErrorMessage(err))
		c.term(m, erasure.ErrorCode(err))
	case erasure.EUNAVAILABLE:
		if errors.Is(err, erasure.ErrDispatchUnrecorded) {
			// The owner answered before the dispatch was written; it will be in a moment.
			if err := m.NakWithDelay(AckRetryDelay / 10); err != nil {
				c.log.Warn("nak of an ack message", "err", err)
			}
			return
		}
		fallthrough
	default:
		c.log.Error("acknowledgement not applied, will retry", "dataset", dataset, "task_id", ack.TaskID, "err", err)
		if err := m.NakWithDelay(AckRetryDelay); err != nil {
			c.log.Warn("nak of an ack message", "err", err)
		}
	}
}

func (c *Conn) term(m jetstream.Msg, reason string) {
	if err := m.TermWithReason(reason); err != nil {
		c.log.Warn("terminating an ack message", "err", err)
	}
}
