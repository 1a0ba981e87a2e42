// Package kafkaconn is the `kafka` connector: erasure of async datasets by commands produced to
// Kafka topics and acknowledged by the datasets' owners on an ack topic, with the same wire
// contract as NATS (docs/async.md, docs/schemas) and the same guarantees: at least once,
// late acknowledgements count, and a command is produced again after ack_timeout.
//
// A dataset declares
//
//	connector: kafka
//	kafka: { topic: erasure.notifications, ack_timeout: 1h, identifiers: [user_id] }
//
// topic is where its commands go (default "erasure.<dataset>"), identifiers the identifier
// types its owner needs (only those go into a command), ack_timeout how long a dispatched
// task waits for its acknowledgement before the command is produced again. The cluster is the
// configuration's `kafka:` section (registry.Kafka).
//
// A command is one record: key the keyed hash of its subject (erasure.Command.SubjectKey), so
// that one subject's commands keep their order in one partition; value the command's JSON;
// header "dispatch" its dispatch id. An acknowledgement is one record on the ack topic: value
// the acknowledgement's JSON, key its dispatch id. The ack topic is shared by every dataset:
// the dispatch id, which only the readers of a dataset's command topic see, binds each
// acknowledgement to its task and so to its dataset (give each service READ on its own
// command topic and WRITE on the ack topic, nothing else).
//
// Wiring, in the server: Connect, Bind the registry's datasets to the Conn, EnsureTopics with
// the topics Bind returned, ListenAcks with apply set to pipeline.Service.AckByDispatch.
// Building a connector performs no I/O.
package kafkaconn

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.yaml.in/yaml/v3"

	"erasure"
	"erasure/connector/wire"
	"erasure/registry"
)

func init() { registry.Register("kafka", driver{}) }

// Block is the `kafka:` block of a dataset.
type Block struct {
	Topic       string   `yaml:"topic"`
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
	node := func(key string) *yaml.Node { return registry.Child(b.Block, key) }
	if b.Dataset.Method != "" && b.Dataset.Method != erasure.MethodAsync {
		b.Errorf(nil, "the kafka connector is async; method %q is not possible", b.Dataset.Method)
		ok = false
	}
	if b.Config != nil && len(b.Config.Kafka.Brokers) == 0 {
		b.Errorf(b.Block, "the kafka connector needs the cluster: set kafka.brokers at the top of the file")
		ok = false
	}
	if blk.Topic == "" {
		blk.Topic = "erasure." + b.Dataset.Name
	}
	ackTopic := registry.DefaultKafkaAckTopic
	if b.Config != nil && b.Config.Kafka.AckTopic != "" {
		ackTopic = b.Config.Kafka.AckTopic
	}
	switch {
	case !registry.TopicRE.MatchString(blk.Topic):
		b.Errorf(node("topic"), "kafka.topic %q is not a topic name: letters, digits, '.', '_' and '-', at most 249", blk.Topic)
		ok = false
	case blk.Topic == ackTopic:
		b.Errorf(node("topic"), "kafka.topic %q is the ack topic, where acknowledgements go", blk.Topic)
		ok = false
	}
	if !b.AsyncFields("kafka", blk.AckTimeout, blk.Identifiers) || !ok {
		return nil
	}
	return newConnector(b.Dataset.Name, blk.Topic, b.Dataset.Keys)
}

var datasetRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

// New returns the connector of dataset producing to topic and sending the identifiers of the
// types keys, as the registry builds it (for tests and programs that wire datasets by hand).
// Errors: EINVALID for a bad dataset name or topic, or no keys.
func New(dataset, topic string, keys []string) (*Connector, error) {
	if !datasetRE.MatchString(dataset) {
		return nil, erasure.Errorf(erasure.EINVALID, "%q is not a dataset name", dataset)
	}
	if !registry.TopicRE.MatchString(topic) {
		return nil, erasure.Errorf(erasure.EINVALID, "%q is not a topic name", topic)
	}
	if len(keys) == 0 {
		return nil, erasure.Errorf(erasure.EINVALID, "dataset %s: no identifier types", dataset)
	}
	return newConnector(dataset, topic, append([]string(nil), keys...)), nil
}

func newConnector(dataset, topic string, keys []string) *Connector {
	return &Connector{dataset: dataset, topic: topic, keys: keys, sent: newRecent(RecentDispatches)}
}

// Connector produces one async dataset's commands. It is built by the registry and bound to a
// Conn by Bind; until then Dispatch fails permanently (a wiring bug, not a passing failure).
type Connector struct {
	dataset string
	topic   string
	keys    []string
	conn    atomic.Pointer[Conn]
	sent    *recent
}

var (
	_ erasure.Dispatcher = (*Connector)(nil)
	_ erasure.Checker    = (*Connector)(nil)
)

// Topic returns the topic the dataset's commands are produced to.
func (c *Connector) Topic() string { return c.topic }

// Bind binds the kafka connectors among datasets to conn and returns their command topics,
// without duplicates, for EnsureTopics. Datasets of other connectors are left alone.
func Bind(datasets []*erasure.Dataset, conn *Conn) []string {
	var topics []string
	seen := map[string]bool{}
	for _, d := range datasets {
		kc, ok := d.Conn.(*Connector)
		if !ok {
			continue
		}
		kc.conn.Store(conn)
		if !seen[kc.topic] {
			seen[kc.topic] = true
			topics = append(topics, kc.topic)
		}
	}
	return topics
}

// RecentDispatches is how many confirmed dispatch ids a connector remembers, so that
// dispatching a command again (after a failure whose outcome was unknown to the caller) does
// not produce it twice.
const RecentDispatches = 1 << 16

// Dispatch produces cmd to the dataset's topic and returns once the cluster has acknowledged
// the record (acks=all, idempotent producer). The record's key is cmd.SubjectKey (the request
// id when it is empty), its header "dispatch" the dispatch id. Kafka keeps no message ids, so
// Dispatch remembers the last RecentDispatches dispatch ids it produced and does not produce
// one of them again: idempotent per dispatch within the process. After a restart a command
// may be delivered twice, as after any redelivery; consumers are idempotent.
//
// Errors: *erasure.PermanentError when the connector is not bound, the command cannot be
// encoded, or the cluster refuses the record for good (too large, not authorized);
// *erasure.TransientError on timeouts, unreachable brokers and other retriable errors.
func (c *Connector) Dispatch(ctx context.Context, cmd erasure.Command) error {
	conn := c.conn.Load()
	if conn == nil {
		return erasure.Permanentf("kafka connector of %s is not bound to a Kafka connection", c.dataset)
	}
	if cmd.Dataset == "" {
		cmd.Dataset = c.dataset
	}
	data, err := wire.EncodeCommand(cmd, c.keys, wire.AckTo{Topic: conn.ackTopic})
	if err != nil {
		return err
	}
	if c.sent.has(cmd.Dispatch) {
		return nil
	}
	key := cmd.SubjectKey
	if key == "" {
		key = cmd.RequestID
	}
	rec := &kgo.Record{Topic: c.topic, Key: []byte(key), Value: data, Headers: []kgo.RecordHeader{
		{Key: "dispatch", Value: []byte(cmd.Dispatch)}, {Key: "content-type", Value: []byte("application/json")},
	}}
	if err := conn.producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return classify(err)
	}
	c.sent.add(cmd.Dispatch)
	return nil
}

// classify sorts a produce error into transient and permanent, by type.
func classify(err error) error {
	var ke *kerr.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrRecordTimeout),
		errors.Is(err, kgo.ErrRecordRetries), errors.Is(err, kgo.ErrMaxBuffered):
		return erasure.Transient(fmt.Errorf("kafka produce: %w", err), 0)
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge), errors.Is(err, kerr.InvalidRecord),
		errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed), errors.Is(err, kerr.InvalidTopicException),
		errors.Is(err, kgo.ErrClientClosed):
		return erasure.Permanent(fmt.Errorf("kafka produce refused: %w", err))
	case errors.As(err, &ke) && !ke.Retriable:
		return erasure.Permanent(fmt.Errorf("kafka produce refused: %w", err))
	}
	// Anything else (a network error, a retriable broker error) is worth another attempt.
	return erasure.Transient(fmt.Errorf("kafka produce: %w", err), 0)
}

// Check verifies that the connector is bound and that its topic exists.
func (c *Connector) Check(ctx context.Context) error {
	conn := c.conn.Load()
	if conn == nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "kafka connector of %s is not bound", c.dataset)
	}
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(c.topic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, conn.producer)
	if err != nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "kafka: %v", err)
	}
	if len(resp.Topics) != 1 {
		return erasure.Errorf(erasure.EUNAVAILABLE, "kafka: no metadata for topic %s", c.topic)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "kafka: topic %s: %v", c.topic, err)
	}
	return nil
}

// Close does nothing: the Conn belongs to whoever connected it.
func (c *Connector) Close() error { return nil }

// recent is a bounded set of strings, forgetting the oldest first.
type recent struct {
	mu    sync.Mutex
	max   int
	set   map[string]bool
	order []string
}

func newRecent(n int) *recent { return &recent{max: n, set: map[string]bool{}} }

func (r *recent) has(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.set[s]
}

func (r *recent) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.set[s] {
		return
	}
	r.set[s] = true
	r.order = append(r.order, s)
	if len(r.order) > r.max {
		delete(r.set, r.order[0])
		r.order = r.order[1:]
	}
}
