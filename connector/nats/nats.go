// Package natsconn is the `nats` connector: erasure of async datasets by commands published
// through NATS JetStream and acknowledged by the datasets' owners (docs/async.md).
//
// A dataset declares
//
//	connector: nats
//	nats: { subject: erasure.notifications, ack_timeout: 1h, identifiers: [user_id] }
//
// subject is where its commands go (default "erasure.<dataset>", the subject the mutator
// package reads by default), identifiers the identifier types its owner needs (only those go
// into a command), ack_timeout how long a dispatched task waits for its acknowledgement before
// the command is published again (default: the registry's).
//
// Each command carries its dispatch id (erasure.DispatchID), which is also its JetStream
// message id, and every acknowledgement must carry it back (wire contract v2, connector/wire).
// The embedded server admits only erasure and one user per bound dataset, with the
// permissions of DatasetPermissions (auth.go); `erasure nats credentials` hands them out.
//
// Wiring, in the server: Connect (embedded server or external cluster, WithDeployment), Bind
// the registry's datasets to the Conn, EnsureStream with the subjects Bind returned (it also
// admits the datasets' users on the embedded server), ListenAcks with apply set to
// erasure.Service.Ack. Building a connector performs no I/O.
package natsconn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"erasure"
	"erasure/registry"
)

func init() { registry.Register("nats", driver{}) }

// SharedConn is the server's NATS connection, which every nats connector built by the
// registry asks for: the server provides it (SharedConn.Provide(cfg.Resources, conn)) once
// connected, when SharedConn.Wanted says some dataset needs it.
var SharedConn = registry.NewResource[*Conn]("nats")

// Block is the `nats:` block of a dataset.
type Block struct {
	Subject     string   `yaml:"subject"`
	AckTimeout  string   `yaml:"ack_timeout"` // a registry duration: 90m, 4h, 2d
	Identifiers []string `yaml:"identifiers"`
}

type driver struct{}

func (driver) Method() erasure.Method { return erasure.MethodAsync }

func (driver) Build(b *registry.Build) erasure.Connector {
	var blk Block
	if !b.Decode(b.Block, &blk) {
		return nil
	}
	ok := true
	node := func(key string) *yaml.Node { return valueOf(b.Block, key) }
	if b.Dataset.Method != "" && b.Dataset.Method != erasure.MethodAsync {
		b.Errorf(nil, "the nats connector is async; method %q is not possible", b.Dataset.Method)
		ok = false
	}
	if blk.Subject == "" {
		blk.Subject = "erasure." + b.Dataset.Name
	}
	if err := ValidSubject(blk.Subject); err != nil {
		b.Errorf(node("subject"), "nats.subject: %v", err)
		ok = false
	} else if prefix := ackPrefixOf(b.Config); under(blk.Subject, prefix) {
		b.Errorf(node("subject"), "nats.subject %q is under %s, where acknowledgements go", blk.Subject, prefix)
		ok = false
	}
	if !b.AsyncFields("nats", blk.AckTimeout, blk.Identifiers) || !ok {
		return nil
	}
	c := &Connector{dataset: b.Dataset.Name, subject: blk.Subject, keys: b.Dataset.Keys, policy: &b.Dataset.Policy}
	SharedConn.Use(b.Resources, func(conn *Conn) { c.conn.Store(conn) })
	return c
}

// New returns the connector of dataset publishing on subject and sending the identifiers of
// the types keys, as the registry builds it (for tests and programs that wire datasets by
// hand). Errors: EINVALID for a bad dataset name or subject, or no keys.
func New(dataset, subject string, keys []string) (*Connector, error) {
	if !datasetRE.MatchString(dataset) {
		return nil, erasure.Errorf(erasure.EINVALID, "%q is not a dataset name", dataset)
	}
	if err := ValidSubject(subject); err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "%v", err)
	}
	if len(keys) == 0 {
		return nil, erasure.Errorf(erasure.EINVALID, "dataset %s: no identifier types", dataset)
	}
	return &Connector{dataset: dataset, subject: subject, keys: append([]string(nil), keys...)}, nil
}

// ackPrefixOf returns the ack prefix cfg configures.
func ackPrefixOf(cfg *registry.Config) string {
	if cfg == nil {
		return DefaultAckPrefix
	}
	return orDefault(cfg.NATS.AckPrefix, DefaultAckPrefix)
}

// under reports whether subject s is prefix or below it.
func under(s, prefix string) bool {
	return s == prefix || len(s) > len(prefix) && s[:len(prefix)] == prefix && s[len(prefix)] == '.'
}

// valueOf returns the value node of key in mapping n, or nil.
func valueOf(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Connector publishes one async dataset's commands. It is built by the registry and bound to
// a Conn by Bind; until then Dispatch fails permanently (a wiring bug, not a passing failure).
type Connector struct {
	dataset string
	subject string
	keys    []string
	conn    atomic.Pointer[Conn]
	// policy is the dataset's (nil for a connector made by New): its ack timeout and backoff
	// bound how long a command is kept in the stream (CommandTTL).
	policy *erasure.Policy
}

// TaskHeader is the header of a command naming its task id, so that the commands the stream
// still holds can be matched to their tasks without reading their identifiers (PruneCommands).
const TaskHeader = "Erasure-Task-Id"

// CommandTTL is how long the stream keeps a command of a dataset with policy p: until the
// task gives up waiting for its acknowledgement and publishes it again as a new attempt
// (ack_timeout, then at most backoff.max), after which this one is of no use. Zero when p is
// nil: the stream's maximum age applies.
func CommandTTL(p *erasure.Policy) time.Duration {
	if p == nil || p.AckTimeout <= 0 {
		return 0
	}
	return max(p.AckTimeout+p.Backoff.Max, time.Second)
}

var (
	_ erasure.Dispatcher = (*Connector)(nil)
	_ erasure.Checker    = (*Connector)(nil)
)

// Subject returns the subject the dataset's commands are published on.
func (c *Connector) Subject() string { return c.subject }

// Bind binds the nats connectors among datasets to conn and returns their command subjects,
// without duplicates, for EnsureStream. Datasets of other connectors are left alone.
func Bind(datasets []*erasure.Dataset, conn *Conn) []string {
	var subjects []string
	seen := map[string]bool{}
	for _, d := range datasets {
		nc, ok := d.Conn.(*Connector)
		if !ok {
			continue
		}
		nc.conn.Store(conn)
		conn.mu.Lock()
		conn.bound[nc.dataset] = nc.subject
		conn.mu.Unlock()
		if !seen[nc.subject] {
			seen[nc.subject] = true
			subjects = append(subjects, nc.subject)
		}
	}
	return subjects
}

// Dispatch publishes c on the dataset's subject through JetStream and returns once the stream
// has stored it (PubAck). The message carries its task id (TaskHeader) and, where the stream
// allows per-message TTLs, expires after CommandTTL: a command is not kept longer than its
// attempt waits for it (PruneCommands removes it sooner once its task is acknowledged,
// cancelled or ended). The message id is the command's dispatch id, unique across
// deployments and attempts, so publishing the same dispatch again within the stream's
// duplicate window stores nothing new: Dispatch is idempotent per dispatch. A publish whose
// outcome is unknown (a timeout, a connection lost on the way) is published again with the
// same id until it is confirmed or ctx ends, so that one slow publish stays one message; and
// nothing is buffered while disconnected, so no publish reaches the stream after Dispatch gave
// up on it. The command's AckSubject is set from the bound Conn when empty, and only the
// identifiers of the dataset's types are sent.
//
// Errors: *erasure.PermanentError when the connector is not bound, the command cannot be
// encoded (no dispatch id, no identifier), or JetStream refuses the message for good (too
// large, stream sealed); *erasure.TransientError when no stream answers, on timeouts and lost
// connections.
func (c *Connector) Dispatch(ctx context.Context, cmd erasure.Command) error {
	conn := c.conn.Load()
	if conn == nil {
		return erasure.Permanentf("nats connector of %s is not bound to a NATS connection", c.dataset)
	}
	if cmd.Dataset == "" {
		cmd.Dataset = c.dataset
	}
	if cmd.AckSubject == "" {
		cmd.AckSubject = conn.AckSubject(c.dataset)
	}
	data, err := EncodeCommand(cmd, c.keys)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: c.subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, cmd.Dispatch)
	msg.Header.Set("Content-Type", "application/json")
	msg.Header.Set(TaskHeader, strconv.FormatInt(cmd.TaskID, 10))
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(conn.stream)}
	if ttl := CommandTTL(c.policy); ttl > 0 && conn.msgTTL.Load() {
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	wait := 50 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(ctx, PublishTryTimeout)
		_, err := conn.js.PublishMsg(pctx, msg, opts...)
		cancel()
		if err == nil {
			return nil
		}
		if !unknownOutcome(err) || ctx.Err() != nil {
			return classify(err)
		}
		select {
		case <-ctx.Done():
			return classify(err)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// PublishTryTimeout bounds one try of a command's publication; Dispatch tries again, with the
// same message id, until its context ends.
const PublishTryTimeout = 5 * time.Second

// unknownOutcome reports whether a publish that failed with err may still have been stored:
// publishing the same message id again is then the way to know.
func unknownOutcome(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrReconnectBufExceeded)
}

// classify sorts a publish error into transient and permanent, by type.
func classify(err error) error {
	var api *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, os.ErrDeadlineExceeded):
		return erasure.Transient(fmt.Errorf("nats publish: %w", err), 0)
	case errors.Is(err, context.Canceled):
		return erasure.Transient(fmt.Errorf("nats publish cancelled: %w", err), 0)
	case errors.As(err, &api) && (api.Code == 503 || api.Code == 500 || api.Code == 408):
		// JetStream temporarily unavailable (no quorum, leader election).
		return erasure.Transient(fmt.Errorf("nats publish: %w", err), 0)
	case errors.As(err, &api):
		return erasure.Permanent(fmt.Errorf("nats publish refused: %w", err))
	case errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadSubject):
		return erasure.Permanent(fmt.Errorf("nats publish: %w", err))
	}
	// Anything else (a network error) is worth another attempt.
	return erasure.Transient(fmt.Errorf("nats publish: %w", err), 0)
}

// Check verifies that the connector is bound and that a stream captures its subject.
func (c *Connector) Check(ctx context.Context) error {
	conn := c.conn.Load()
	if conn == nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "nats connector of %s is not bound", c.dataset)
	}
	name, err := conn.js.StreamNameBySubject(ctx, c.subject)
	if err != nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "no stream captures %s: %v", c.subject, err)
	}
	if name != conn.stream {
		return erasure.Errorf(erasure.EINVALID, "subject %s is captured by stream %s, not %s", c.subject, name, conn.stream)
	}
	return nil
}

// Close does nothing: the Conn belongs to whoever connected it.
func (c *Connector) Close() error { return nil }
