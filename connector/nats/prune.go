package natsconn

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"erasure"
)

// PendingFunc reports whether the command dispatch of task taskID still waits for its
// acknowledgement (the server wires it to pipeline.Service.CommandPending). A command of
// another deployment, or one it cannot place, must be reported pending: it is left alone.
type PendingFunc func(ctx context.Context, taskID int64, dispatch string) (bool, error)

// PruneCommands removes from the stream every command on subjects (the async datasets'
// command subjects) that no longer waits for its acknowledgement: its task was acknowledged, cancelled or ended, or published
// again as a later attempt. Commands hold identifiers in clear; they must not outlive their
// task. Messages are deleted with SecureDeleteMsg (overwritten, not only marked), read
// headers-only: their identifiers are never read here. Commands without a TaskHeader
// (published by older builds) are left to their TTL or the stream's maximum age. It returns
// how many commands it removed. Errors: EUNAVAILABLE when JetStream does not answer.
func (c *Conn) PruneCommands(ctx context.Context, subjects []string, pending PendingFunc) (int, error) {
	if len(subjects) == 0 {
		return 0, nil
	}
	stream, err := c.js.Stream(ctx, c.stream)
	if err != nil {
		return 0, erasure.Errorf(erasure.EUNAVAILABLE, "nats: pruning commands: %v", err)
	}
	last := stream.CachedInfo().State.LastSeq // what was published before this pass
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: subjects, HeadersOnly: true, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return 0, erasure.Errorf(erasure.EUNAVAILABLE, "nats: pruning commands: %v", err)
	}
	removed := 0
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return removed, erasure.Errorf(erasure.EUNAVAILABLE, "nats: pruning commands: %v", err)
		}
		if info.NumPending == 0 || info.Delivered.Stream >= last {
			return removed, nil
		}
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return removed, erasure.Errorf(erasure.EUNAVAILABLE, "nats: pruning commands: %v", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			task, err := strconv.ParseInt(m.Headers().Get(TaskHeader), 10, 64)
			dispatch := m.Headers().Get(jetstream.MsgIDHeader)
			if err != nil || !erasure.ValidDispatchID(dispatch) {
				continue
			}
			live, err := pending(ctx, task, dispatch)
			if err != nil {
				return removed, err
			}
			if live {
				continue
			}
			if err := stream.SecureDeleteMsg(ctx, md.Sequence.Stream); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return removed, erasure.Errorf(erasure.EUNAVAILABLE, "nats: removing a command: %v", err)
			}
			removed++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return removed, erasure.Errorf(erasure.EUNAVAILABLE, "nats: pruning commands: %v", err)
		}
		if n == 0 {
			// Pending messages not delivered yet: give the consumer a moment.
			select {
			case <-ctx.Done():
				return removed, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// PruneEvery is how often the server prunes the commands of ended tasks from the stream, at
// the latest; an acknowledgement applied prunes sooner.
const PruneEvery = 30 * time.Second
