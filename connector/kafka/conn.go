package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"erasure"
	"erasure/connector/wire"
	"erasure/registry"
)

// DefaultAckGroup is the consumer group reading acknowledgements when neither the configuration
// (kafka.group) nor a deployment id names one.
const DefaultAckGroup = "erasure-acks"

// AckRetryDelay is how long an acknowledgement whose apply failed for a passing reason waits
// before it is applied again.
const AckRetryDelay = 2 * time.Second

// AckParallel is how many acknowledgements ListenAcks applies at once by default
// (WithAckParallel): the store gathers concurrent acknowledgements into shared transactions.
const AckParallel = 128

// Conn is erasure's connection to a Kafka cluster: connectors bound to it (Bind) produce
// through it, and it reads acknowledgements (ListenAcks). It is safe for concurrent use.
type Conn struct {
	producer   *kgo.Client
	base       []kgo.Opt
	ackTopic   string
	group      string
	partitions int32
	deployment string
	log        *slog.Logger
	// ackParallel is how many acknowledgements ListenAcks applies at once.
	ackParallel int

	mu      sync.Mutex
	readers []*kgo.Client
	wg      sync.WaitGroup
	closing chan struct{}
	once    sync.Once
	// producerClosed is set once Close closed the producer.
	producerClosed bool
}

// Option changes how Connect sets up a Conn.
type Option func(*Conn)

// WithDeployment tells the Conn the deployment id (erasure.Store.Deployment): the default ack
// group is DefaultAckGroup followed by "-" and its first 12 characters, so that deployments
// sharing an ack topic each read every acknowledgement.
func WithDeployment(id string) Option { return func(c *Conn) { c.deployment = id } }

// WithAckParallel makes ListenAcks apply up to n acknowledgements at once (default
// AckParallel; 1 applies them one at a time, in partition order).
func WithAckParallel(n int) Option { return func(c *Conn) { c.ackParallel = max(n, 1) } }

// WithKgoOptions adds franz-go options to every client of the Conn (tests, tuning).
func WithKgoOptions(opts ...kgo.Opt) Option {
	return func(c *Conn) { c.base = append(c.base, opts...) }
}

// Connect returns erasure's connection to the cluster of cfg. It performs no I/O: EnsureTopics
// and ListenAcks do. Errors: EINVALID for a bad configuration (no brokers, unreadable TLS
// files, an unknown SASL mechanism).
func Connect(cfg registry.Kafka, log *slog.Logger, opts ...Option) (*Conn, error) {
	if log == nil {
		log = slog.Default()
	}
	if len(cfg.Brokers) == 0 {
		return nil, erasure.Errorf(erasure.EINVALID, "kafka.brokers is empty")
	}
	c := &Conn{ackTopic: cfg.AckTopic, group: cfg.Group, partitions: int32(cfg.Partitions), log: log.WithGroup("kafka"), closing: make(chan struct{}), ackParallel: AckParallel}
	if c.ackTopic == "" {
		c.ackTopic = registry.DefaultKafkaAckTopic
	}
	if c.partitions <= 0 {
		c.partitions = registry.DefaultKafkaPartitions
	}
	c.base = []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID("erasure")}
	if cfg.TLS.CA != "" || cfg.TLS.Cert != "" {
		t, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		c.base = append(c.base, kgo.DialTLSConfig(t))
	}
	if cfg.SASL.Mechanism != "" {
		m, err := mechanism(cfg)
		if err != nil {
			return nil, err
		}
		c.base = append(c.base, kgo.SASL(m))
	}
	for _, o := range opts {
		o(c)
	}
	if c.group == "" {
		c.group = DefaultAckGroup
		if len(c.deployment) >= 12 {
			c.group += "-" + c.deployment[:12]
		}
	}
	if !registry.TopicRE.MatchString(c.ackTopic) {
		return nil, erasure.Errorf(erasure.EINVALID, "kafka.ack_topic %q is not a topic name", c.ackTopic)
	}
	producer, err := kgo.NewClient(append(append([]kgo.Opt(nil), c.base...),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))...)
	if err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "kafka: %v", err)
	}
	c.producer = producer
	return c, nil
}

func tlsConfig(cfg registry.Kafka) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS.CA != "" {
		pem, err := os.ReadFile(cfg.TLS.CA)
		if err != nil {
			return nil, erasure.Errorf(erasure.EINVALID, "kafka.tls.ca: %v", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, erasure.Errorf(erasure.EINVALID, "kafka.tls.ca: no certificate in %s", cfg.TLS.CA)
		}
	}
	if cfg.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, erasure.Errorf(erasure.EINVALID, "kafka.tls: %v", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

func mechanism(cfg registry.Kafka) (sasl.Mechanism, error) {
	s := cfg.SASL
	switch s.Mechanism {
	case "plain":
		return plain.Auth{User: s.User, Pass: s.Password}.AsMechanism(), nil
	case "scram-sha-256":
		return scram.Auth{User: s.User, Pass: s.Password}.AsSha256Mechanism(), nil
	case "scram-sha-512":
		return scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism(), nil
	}
	return nil, erasure.Errorf(erasure.EINVALID, "kafka.sasl.mechanism %q is not plain, scram-sha-256 or scram-sha-512", s.Mechanism)
}

// AckTopic returns the topic acknowledgements are produced to.
func (c *Conn) AckTopic() string { return c.ackTopic }

// AckGroup returns the consumer group that reads acknowledgements.
func (c *Conn) AckGroup() string { return c.group }

// Client returns the producing client (for tools and tests that act as erasure).
func (c *Conn) Client() *kgo.Client { return c.producer }

// EnsureTopics creates the command topics and the ack topic that do not exist yet, with
// kafka.partitions partitions and the cluster's default replication; existing topics are left
// as they are. Errors: EINVALID for a bad topic name or one the cluster refuses to create
// (not authorized: create them by hand, and give erasure WRITE on them); EUNAVAILABLE when
// the cluster does not answer.
func (c *Conn) EnsureTopics(ctx context.Context, topics []string) error {
	all := append([]string{c.ackTopic}, topics...)
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	for _, t := range all {
		if !registry.TopicRE.MatchString(t) {
			return erasure.Errorf(erasure.EINVALID, "%q is not a topic name", t)
		}
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = t, c.partitions, -1
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, c.producer)
	if err != nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "kafka: creating topics: %v", err)
	}
	created := 0
	for _, t := range resp.Topics {
		err := kerr.ErrorForCode(t.ErrorCode)
		switch {
		case err == nil:
			created++
		case errors.Is(err, kerr.TopicAlreadyExists):
		case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
			return erasure.Errorf(erasure.EINVALID, "kafka: not allowed to create topic %s: create it by hand (or allow erasure to), then start again", t.Topic)
		default:
			return erasure.Errorf(erasure.EINVALID, "kafka: creating topic %s: %v", t.Topic, err)
		}
	}
	if created > 0 {
		c.log.Info("topics created", "topics", created)
	}
	return nil
}

// ApplyFunc applies one decoded acknowledgement. The server wires it to
// pipeline.Service.AckByDispatch. Its error decides the record's fate: an *erasure.Error with
// code EINVALID, ENOTFOUND, ECONFLICT or EFORBIDDEN rejects the acknowledgement for good
// (logged without its content, never retried); any other error is a passing failure (the
// store is down) and the acknowledgement is applied again after AckRetryDelay, holding back
// the later ones of its task and the commit of its fetch (offsets are committed in order).
type ApplyFunc func(ctx context.Context, ack erasure.Ack) error

// ListenAcks starts reading acknowledgements from the ack topic in the Conn's consumer group,
// from the oldest one not yet committed, so that acknowledgements produced while the server is
// down are applied when it comes back, and several servers share them. Each record's value is
// decoded with wire.DecodeAck; a malformed one is logged (never with its content) and skipped
// without calling apply. apply is called for the others, up to AckParallel at once (one at a
// time with WithAckParallel(1)); the acknowledgements of one task in partition order. Offsets
// are committed after apply, so each acknowledgement is applied at least once.
//
// ListenAcks returns once the cluster answered; reading goes on until ctx is cancelled or the
// Conn is closed. Errors: EUNAVAILABLE when the cluster does not answer.
func (c *Conn) ListenAcks(ctx context.Context, apply ApplyFunc) error {
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), c.base...),
		kgo.ConsumerGroup(c.group), kgo.ConsumeTopics(c.ackTopic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(time.Second))...)
	if err != nil {
		return erasure.Errorf(erasure.EINVALID, "kafka: %v", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = cl.Ping(pctx)
	cancel()
	if err != nil {
		cl.Close()
		return erasure.Errorf(erasure.EUNAVAILABLE, "kafka: reading acknowledgements: %v", err)
	}
	c.mu.Lock()
	c.readers = append(c.readers, cl)
	c.mu.Unlock()
	// apply may outlive ctx's cancellation only for the record at hand.
	applyCtx := context.WithoutCancel(ctx)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			fetches := cl.PollFetches(ctx)
			if fetches.IsClientClosed() || ctx.Err() != nil {
				return
			}
			fetches.EachError(func(topic string, p int32, err error) {
				c.log.Warn("reading acknowledgements", "partition", p, "err", err)
			})
			var records []*kgo.Record
			fetches.EachRecord(func(r *kgo.Record) { records = append(records, r) })
			if done := c.applyFetch(ctx, applyCtx, records, apply); len(done) > 0 {
				if err := cl.CommitRecords(applyCtx, done...); err != nil {
					// The records will be read again: applying an acknowledgement twice is harmless.
					c.log.Warn("committing acknowledgements", "err", err)
				}
			}
		}
	}()
	return nil
}

// applyFetch applies the records of one fetch, up to AckParallel at once, and returns those
// whose offsets may be committed. The acknowledgements of one task are applied one after the
// other in partition order (a chain per task id); different tasks' at once, so that the store
// gathers them into shared transactions instead of one commit each. Of each partition only the
// records before the first one left undone (the listener is stopping) are returned: a
// committed offset never skips an acknowledgement that was not applied.
func (c *Conn) applyFetch(ctx, applyCtx context.Context, records []*kgo.Record, apply ApplyFunc) []*kgo.Record {
	ok := make([]bool, len(records))
	chains := map[string][]int{}
	var order []string
	for i, r := range records {
		key := fmt.Sprintf("%d/#%d", r.Partition, r.Offset) // a malformed one: rejected on its own by handleAck
		if ack, err := wire.DecodeAck(r.Value); err == nil {
			key = fmt.Sprintf("%d/%d", r.Partition, ack.TaskID)
		}
		if _, seen := chains[key]; !seen {
			order = append(order, key)
		}
		chains[key] = append(chains[key], i)
	}
	slots := make(chan struct{}, c.ackParallel)
	var wg sync.WaitGroup
	for _, key := range order {
		chain := chains[key]
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			for _, i := range chain {
				if !c.handleAck(ctx, applyCtx, records[i], apply) {
					return // stopping: the rest of the chain stays undone
				}
				ok[i] = true
			}
		}()
	}
	wg.Wait()
	var done []*kgo.Record
	stopped := map[int32]bool{}
	for i, r := range records {
		if !ok[i] {
			stopped[r.Partition] = true
		}
		if ok[i] && !stopped[r.Partition] {
			done = append(done, r)
		}
	}
	return done
}

// handleAck applies one record, retrying passing failures until ctx ends; it reports whether
// the record is done with (applied or rejected).
func (c *Conn) handleAck(ctx, applyCtx context.Context, r *kgo.Record, apply ApplyFunc) bool {
	ack, err := wire.DecodeAck(r.Value)
	if err != nil {
		c.log.Warn("acknowledgement rejected", "partition", r.Partition, "offset", r.Offset, "reason", erasure.ErrorMessage(err))
		return true
	}
	for {
		err := apply(applyCtx, ack)
		switch erasure.ErrorCode(err) {
		case "":
			c.log.Debug("acknowledgement applied", "task_id", ack.TaskID, "status", ack.Status)
			return true
		case erasure.ENOTFOUND:
			// An unknown task, or a dispatch id that names no dispatch of this deployment
			// (another deployment's command, or a forgery): nothing of it is logged.
			c.log.Warn("acknowledgement rejected", "partition", r.Partition, "offset", r.Offset, "reason", "it answers no command of this deployment")
			return true
		case erasure.EINVALID, erasure.ECONFLICT, erasure.EFORBIDDEN:
			c.log.Warn("acknowledgement rejected", "task_id", ack.TaskID, "reason", erasure.ErrorMessage(err))
			return true
		}
		delay := AckRetryDelay
		if errors.Is(err, erasure.ErrDispatchUnrecorded) {
			delay = AckRetryDelay / 10 // the dispatch is being written
		} else {
			c.log.Error("acknowledgement not applied, will retry", "task_id", ack.TaskID, "err", err)
		}
		select {
		case <-ctx.Done():
			return false // not committed: read again by whoever reads next
		case <-c.closing:
			return false
		case <-time.After(delay):
		}
	}
}

// DeleteTopics deletes topics (the command topics and the ack topic of a test). The server
// never calls it.
func (c *Conn) DeleteTopics(ctx context.Context, topics ...string) error {
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = 30000
	for _, t := range topics {
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
		req.TopicNames = append(req.TopicNames, t)
	}
	_, err := req.RequestWith(ctx, c.producer)
	return err
}

// Close stops the acknowledgement readers (leaving their group) and closes the producer,
// waiting for records in flight. It is safe to call more than once.
func (c *Conn) Close() error {
	c.once.Do(func() { close(c.closing) })
	c.mu.Lock()
	rs := c.readers
	c.readers = nil
	c.mu.Unlock()
	for _, r := range rs {
		r.Close()
	}
	c.wg.Wait()
	if c.producer != nil && !c.closed() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.producer.Flush(ctx); err != nil {
			c.log.Warn("records not flushed before closing", "err", fmt.Sprint(err))
		}
		cancel()
		c.producer.Close()
		c.mu.Lock()
		c.producerClosed = true
		c.mu.Unlock()
	}
	return nil
}

func (c *Conn) closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.producerClosed
}
