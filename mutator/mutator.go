// Package mutator is for the teams that own an async dataset: it reads erasure's commands for
// the dataset from NATS JetStream, calls a handler that erases the subject's data in the
// service's own storage, and reports the outcome back to erasure (docs/async.md).
//
//	nc, _ := nats.Connect("nats://127.0.0.1:4233")
//	js, _ := jetstream.New(nc)
//	err := mutator.Run(ctx, js, "notifications", func(ctx context.Context, c mutator.Command) (int64, error) {
//		return store.DeleteByUser(ctx, c.Identifiers.Values("user_id"))
//	})
//
// Delivery is at least once: a command comes again when the service stopped before reporting,
// when erasure published a new attempt after its ack timeout, or when reporting failed. The
// handler must therefore be idempotent: erasing what is already gone succeeds with 0 removed.
//
// What the handler returns decides what erasure is told:
//
//   - nil: the acknowledgement {"status":"done","removed":N} is published, then the message is
//     acknowledged to JetStream;
//   - an error wrapped with Permanent: {"status":"failed","error":...} at once (erasure's retry
//     policy decides what happens next: a new attempt later, or an operator);
//   - any other error: the message is delivered again after a backoff (MaxRetries times in
//     all), then reported as failed.
//
// Run is the whole life of a consumer: it returns when ctx is cancelled, after the handlers at
// work have finished (StopTimeout bounds the wait).
package mutator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Command is one erasure command (docs/schemas/command.schema.json).
type Command struct {
	TaskID      int64       `json:"task_id"`
	RequestID   string      `json:"request_id"`
	Dataset     string      `json:"dataset"`
	Attempt     int         `json:"attempt"`
	Dispatch    string      `json:"dispatch"`
	Identifiers Identifiers `json:"identifiers"`
	Deadline    time.Time   `json:"deadline"`
	AckSubject  string      `json:"ack_subject"`
	// Canary is set on the command of a canary, a synthetic subject erasure sends to check the
	// dataset end to end: erase and acknowledge it like any other (its identifiers name nobody).
	Canary bool `json:"canary,omitempty"`
	// Delivery counts the deliveries of this message by JetStream, 1 the first time.
	Delivery uint64 `json:"-"`
}

// Identifiers are a command's identifiers by type. On the wire a type with one value is a
// string and one with several values an array; here every type has a slice.
type Identifiers map[string][]string

// Values returns the values of type typ (nil when the command has none).
func (ids Identifiers) Values(typ string) []string { return ids[typ] }

// UnmarshalJSON reads the wire form: each type maps to a string or an array of strings.
func (ids *Identifiers) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	out := make(Identifiers, len(raw))
	for typ, v := range raw {
		var one string
		if err := json.Unmarshal(v, &one); err == nil {
			out[typ] = []string{one}
			continue
		}
		var many []string
		if err := json.Unmarshal(v, &many); err != nil {
			return fmt.Errorf("identifiers.%s must be a string or an array of strings", typ)
		}
		out[typ] = many
	}
	*ids = out
	return nil
}

// Handler erases a command's subject from the service's data and returns how many things it
// removed. It must be idempotent. Return an error wrapped with Permanent when retrying cannot
// help; any other error is retried. ctx is cancelled when Run stops and StopTimeout passes.
type Handler func(ctx context.Context, c Command) (removed int64, err error)

// Permanent marks err as a failure retrying cannot fix: the command is reported failed at once.
func Permanent(err error) error { return &permanentError{err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type options struct {
	subject     string
	stream      string
	durable     string
	maxInFlight int
	ackWait     time.Duration
	maxRetries  int
	backoff     func(delivery uint64) time.Duration
	stopTimeout time.Duration
	log         *slog.Logger
}

// Option changes how Run consumes.
type Option func(*options)

// Subject sets the subject the dataset's commands are published on: its `nats.subject` in
// erasure's registry. Default "erasure.<dataset>", the registry's default.
func Subject(s string) Option { return func(o *options) { o.subject = s } }

// Stream sets the stream to consume from. Default: the stream that captures the subject.
func Stream(name string) Option { return func(o *options) { o.stream = name } }

// Durable sets the durable consumer's name (default "erasure-<dataset>" with dots as "_").
// Every instance of a service uses the same name: they share the work.
func Durable(name string) Option { return func(o *options) { o.durable = name } }

// MaxInFlight bounds how many commands are handled at once by this consumer, over all
// instances (default 4).
func MaxInFlight(n int) Option { return func(o *options) { o.maxInFlight = n } }

// AckWait is how long JetStream waits for this consumer before it delivers a command again
// (default 30s). While a handler runs, Run tells JetStream it is in progress every AckWait/3,
// so a slow handler is not redelivered; a stopped process is, after AckWait.
func AckWait(d time.Duration) Option { return func(o *options) { o.ackWait = d } }

// MaxRetries is how many times a command is handled when the handler keeps returning
// retryable errors, before it is reported failed (default 5).
func MaxRetries(n int) Option { return func(o *options) { o.maxRetries = n } }

// Backoff sets the delay before delivery number delivery+1 after a retryable error (default
// 1s·2^(delivery-1), at most 1m).
func Backoff(f func(delivery uint64) time.Duration) Option { return func(o *options) { o.backoff = f } }

// StopTimeout is how long Run waits, once ctx is cancelled, for handlers at work before it
// cancels their contexts (default 30s). A command whose handler was cut short is delivered
// again.
func StopTimeout(d time.Duration) Option { return func(o *options) { o.stopTimeout = d } }

// Logger sets the logger (default slog.Default()). Identifier values are never logged.
func Logger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

func defaultBackoff(delivery uint64) time.Duration {
	d := time.Second
	for i := uint64(1); i < delivery && d < time.Minute; i++ {
		d *= 2
	}
	return min(d, time.Minute)
}

var (
	datasetRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)
	dispatchRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// Run consumes dataset's commands until ctx is cancelled, with a durable pull consumer on the
// dataset's subject, and returns nil then. It returns an error at once when the dataset name or
// options are invalid or the consumer cannot be created, and later when the connection is
// closed under it. Commands of another dataset that share the subject are acknowledged to
// JetStream without calling the handler; malformed ones are dropped and logged.
func Run(ctx context.Context, js jetstream.JetStream, dataset string, h Handler, opts ...Option) error {
	o := options{
		subject:     "erasure." + dataset,
		durable:     "erasure-" + strings.ReplaceAll(dataset, ".", "_"),
		maxInFlight: 4,
		ackWait:     30 * time.Second,
		maxRetries:  5,
		backoff:     defaultBackoff,
		stopTimeout: 30 * time.Second,
		log:         slog.Default(),
	}
	for _, f := range opts {
		f(&o)
	}
	switch {
	case !datasetRE.MatchString(dataset):
		return fmt.Errorf("mutator: %q is not a dataset name", dataset)
	case h == nil:
		return errors.New("mutator: no handler")
	case o.maxInFlight < 1 || o.maxRetries < 1 || o.ackWait < time.Second:
		return errors.New("mutator: MaxInFlight and MaxRetries must be at least 1, AckWait at least 1s")
	}
	log := o.log.WithGroup("mutator").With("dataset", dataset)
	if o.stream == "" {
		name, err := js.StreamNameBySubject(ctx, o.subject)
		if err != nil {
			return fmt.Errorf("mutator: no stream captures %s (is erasure running?): %w", o.subject, err)
		}
		o.stream = name
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, o.stream, jetstream.ConsumerConfig{
		Durable:       o.durable,
		Description:   "erasure commands of " + dataset,
		FilterSubject: o.subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.ackWait,
		MaxAckPending: o.maxInFlight,
		MaxDeliver:    -1, // Run decides when to give up (MaxRetries) and says so to erasure
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("mutator: consumer %s on %s: %w", o.durable, o.stream, err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(o.maxInFlight))
	if err != nil {
		return fmt.Errorf("mutator: reading %s: %w", o.subject, err)
	}
	r := &runner{js: js, dataset: dataset, h: h, o: o, log: log}
	// Handlers keep running after ctx is cancelled until stopTimeout has passed.
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	stopped := make(chan struct{})
	connClosed := js.Conn().StatusChanged(nats.CLOSED)
	defer js.Conn().RemoveStatusListener(connClosed)
	go func() {
		select {
		case <-ctx.Done():
			iter.Drain()
		case <-connClosed:
			iter.Stop()
		case <-stopped:
		}
	}()
	slots := make(chan struct{}, o.maxInFlight)
	var wg sync.WaitGroup
	var runErr error
	for {
		slots <- struct{}{}
		m, err := iter.Next()
		if err != nil {
			<-slots
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				if ctx.Err() == nil {
					runErr = errors.New("mutator: stopped reading commands: the NATS connection is closed")
				}
				break
			}
			if errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionClosed) ||
				errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				runErr = fmt.Errorf("mutator: %w", err)
				iter.Stop()
				break
			}
			log.Warn("reading commands", "err", err)
			continue
		}
		if ctx.Err() != nil {
			// Drained after the stop: hand it back at once to another instance.
			_ = m.Nak()
			<-slots
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			r.handle(hctx, m)
		}()
	}
	close(stopped)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(o.stopTimeout):
		log.Warn("stop timeout: cancelling handlers at work")
		cancelHandlers()
		<-done
	}
	return runErr
}

type runner struct {
	js      jetstream.JetStream
	dataset string
	h       Handler
	o       options
	log     *slog.Logger
}

func (r *runner) handle(ctx context.Context, m jetstream.Msg) {
	var c Command
	if err := json.Unmarshal(m.Data(), &c); err != nil || c.TaskID <= 0 || c.AckSubject == "" || c.Attempt <= 0 || !dispatchRE.MatchString(c.Dispatch) {
		r.log.Error("malformed command dropped", "subject", m.Subject())
		_ = m.TermWithReason("malformed command")
		return
	}
	if c.Dataset != r.dataset {
		_ = m.Ack() // another dataset's command on a shared subject
		return
	}
	if meta, err := m.Metadata(); err == nil {
		c.Delivery = meta.NumDelivered
	}
	log := r.log.With("task_id", c.TaskID, "attempt", c.Attempt, "delivery", c.Delivery)

	removed, err := r.call(ctx, m, c)
	status, reason := "done", ""
	switch {
	case err == nil:
	case ctx.Err() != nil:
		// Stopping: another instance (or this one, restarted) takes it over.
		log.Info("handler cut short by stop; command handed back")
		_ = m.Nak()
		return
	case IsPermanent(err):
		status, reason = "failed", err.Error()
	case c.Delivery >= uint64(r.o.maxRetries):
		status, reason = "failed", fmt.Sprintf("gave up after %d tries: %v", c.Delivery, err)
	default:
		delay := r.o.backoff(c.Delivery)
		log.Warn("handler failed; will retry", "err", err, "retry_in", delay)
		_ = m.NakWithDelay(delay)
		return
	}
	if err := r.report(ctx, c, status, removed, reason); err != nil {
		delay := r.o.backoff(c.Delivery)
		log.Warn("acknowledgement not published; command will come again", "err", err, "retry_in", delay)
		_ = m.NakWithDelay(delay)
		return
	}
	// A confirmed ack: once Run returns, JetStream holds nothing of this command as pending.
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.DoubleAck(actx); err != nil {
		// The acknowledgement reached erasure; a redelivery will only repeat it.
		log.Warn("acknowledging the command to JetStream", "err", err)
	}
	log.Debug("command handled", "status", status, "removed", removed)
}

// call runs the handler, keeping the message in progress and turning a panic into an error.
func (r *runner) call(ctx context.Context, m jetstream.Msg, c Command) (removed int64, err error) {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(r.o.ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = m.InProgress()
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return r.h(ctx, c)
}

// Ack is an acknowledgement (docs/schemas/ack.schema.json): Dispatch is the command's, unchanged.
type Ack struct {
	TaskID   int64  `json:"task_id"`
	Dispatch string `json:"dispatch"`
	Status   string `json:"status"`
	Removed  int64  `json:"removed"`
	Error    string `json:"error,omitempty"`
}

// report publishes the acknowledgement through JetStream and waits until it is stored. Its
// message id, the command's dispatch id with "-ack", makes a repeated report of the same
// command a duplicate JetStream drops.
func (r *runner) report(ctx context.Context, c Command, status string, removed int64, reason string) error {
	if status == "failed" {
		// erasure refuses a failed acknowledgement without a reason, or with more than 1 KiB.
		if reason == "" {
			reason = "the handler failed without saying why"
		}
		reason = clip(reason, 1024)
	}
	data, err := json.Marshal(Ack{TaskID: c.TaskID, Dispatch: c.Dispatch, Status: status, Removed: max(removed, 0), Error: reason})
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: c.AckSubject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, c.Dispatch+"-ack")
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = r.js.PublishMsg(pctx, msg)
	return err
}

// clip cuts s to at most n bytes of valid UTF-8.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
