package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"erasure"
)

// Notifications leave through the outbox (see erasure.OutboxStore): a Notifier, on one process,
// turns the audit trail into outbox messages; Deliverers, on any number of processes, POST
// them.

// NotifyStore is what the notifier reads and writes: the audit trail and the outbox.
type NotifyStore interface {
	Audit(ctx context.Context, f erasure.AuditFilter) ([]erasure.AuditEvent, error)
	AuditHead(ctx context.Context) (erasure.AuditHead, error)
	erasure.OutboxStore
}

// Notifier reads the audit trail after its cursor, asks every subscriber which messages each
// event causes, and stores them with its new cursor in one transaction. It must run on one
// process at a time (the leader): a second one only loses the race for the cursor (ECONFLICT)
// and reads again. With no subscriber it moves the cursor to the trail's head without reading
// the trail, so that a subscriber added later is told only of what happens from then on.
type Notifier struct {
	Store       NotifyStore
	Subscribers []erasure.Subscriber
	// Poll is how often it looks for new events (default 1s); Wake looks now.
	Poll time.Duration
	// Batch is how many events it reads at once (default 500).
	Batch   int
	Logger  *slog.Logger
	Metrics *Metrics

	once sync.Once
	wake chan struct{}
}

func (n *Notifier) init() {
	n.once.Do(func() {
		if n.Poll <= 0 {
			n.Poll = time.Second
		}
		if n.Batch <= 0 {
			n.Batch = 500
		}
		if n.Logger == nil {
			n.Logger = slog.New(slog.DiscardHandler)
		}
		n.wake = make(chan struct{}, 1)
	})
}

// Wake makes the notifier look for new events now.
func (n *Notifier) Wake() {
	n.init()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run notifies until ctx is cancelled. Failures are logged and tried again at the next poll:
// the cursor moves only with the messages of the events it passes.
func (n *Notifier) Run(ctx context.Context) {
	n.init()
	failing := false
	for ctx.Err() == nil {
		events, err := n.Once(ctx)
		switch {
		case err != nil && ctx.Err() == nil && erasure.ErrorCode(err) == erasure.ECONFLICT:
			n.Logger.Warn("another notifier moved the cursor; reading again", "err", err.Error())
			continue
		case err != nil && ctx.Err() == nil:
			if !failing {
				n.Logger.Error("notifications not enqueued; trying again", "err", err.Error())
			}
			failing = true
		case err == nil:
			if failing {
				n.Logger.Info("notifications enqueued again")
			}
			failing = false
			if events == n.Batch {
				continue // more may wait
			}
		}
		select {
		case <-ctx.Done():
		case <-n.wake:
		case <-time.After(n.Poll):
		}
	}
}

// Once reads the events after the cursor (at most Batch), enqueues their messages and moves
// the cursor past them. It returns how many events it read. ECONFLICT when another notifier
// moved the cursor meanwhile; a subscriber's error is returned and nothing moves.
func (n *Notifier) Once(ctx context.Context) (int, error) {
	n.init()
	cur, err := n.Store.NotifyCursor(ctx)
	if err != nil {
		return 0, err
	}
	head, err := n.Store.AuditHead(ctx)
	if err != nil {
		return 0, err
	}
	if n.Metrics != nil {
		n.Metrics.notifyLag.Set(float64(max(0, head.Events-cur)))
	}
	if len(n.Subscribers) == 0 {
		if head.Events <= cur {
			return 0, nil
		}
		return 0, n.Store.EnqueueOutbox(ctx, cur, head.Events, nil)
	}
	evs, err := n.Store.Audit(ctx, erasure.AuditFilter{After: cur, Limit: n.Batch})
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	var msgs []erasure.OutboxMessage
	for _, ev := range evs {
		for _, s := range n.Subscribers {
			ms, err := s.Messages(ctx, ev)
			if err != nil {
				return 0, fmt.Errorf("subscriber %s, audit event %d: %w", s.Name(), ev.Seq, err)
			}
			for _, m := range ms {
				if m.Subscriber == "" {
					m.Subscriber = s.Name()
				}
				m.AuditSeq = ev.Seq
				msgs = append(msgs, m)
			}
		}
	}
	last := evs[len(evs)-1].Seq
	if err := n.Store.EnqueueOutbox(ctx, cur, last, msgs); err != nil {
		return 0, err
	}
	if n.Metrics != nil {
		for _, m := range msgs {
			n.Metrics.enqueued.WithLabelValues(m.Subscriber).Inc()
		}
	}
	if len(msgs) > 0 {
		n.Logger.Debug("notifications enqueued", "events", len(evs), "messages", len(msgs), "cursor", last)
	}
	return len(evs), nil
}

// DeliveryPolicy is implemented by subscribers whose deliveries follow their own policy; zero
// values leave the deliverer's.
type DeliveryPolicy interface {
	Delivery() (maxAttempts int, backoff erasure.Backoff, timeout time.Duration)
}

// Default delivery policy of a Deliverer.
const (
	DefaultDeliveryAttempts = 20
	DefaultDeliveryTimeout  = 10 * time.Second
)

// DefaultDeliveryBackoff spaces a message's attempts: 10 s doubling up to an hour, so that 20
// attempts span about 13 hours.
var DefaultDeliveryBackoff = erasure.Backoff{Initial: 10 * time.Second, Max: time.Hour}

// Deliverer POSTs due outbox messages, each with its subscriber's headers: a 2xx answer
// delivers it; anything else (another status, no answer within the timeout) is retried after
// an exponential backoff with jitter (Backoff, honouring Retry-After), and the message is dead
// after MaxAttempts. Any number of deliverers may share a store (they lease messages).
type Deliverer struct {
	Store       erasure.OutboxStore
	Subscribers []erasure.Subscriber
	// Client sends the POSTs (default: one that follows no redirect).
	Client *http.Client
	// Owner names this deliverer in leases (default host:pid).
	Owner string
	// Workers is how many POSTs run at once (default 4); Batch how many messages are leased at
	// once (default 16).
	Workers, Batch int
	// Poll is how often it looks for due messages when idle (default 1s).
	Poll        time.Duration
	MaxAttempts int
	Backoff     erasure.Backoff
	// Timeout bounds one POST (default 10s).
	Timeout time.Duration
	Now     func() time.Time
	Rand    *rand.Rand
	Logger  *slog.Logger
	Metrics *Metrics

	once   sync.Once
	randMu sync.Mutex
	wake   chan struct{}
}

func (d *Deliverer) init() {
	d.once.Do(func() {
		if d.Client == nil {
			d.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		}
		if d.Owner == "" {
			host, _ := os.Hostname()
			d.Owner = fmt.Sprintf("%s:%d", host, os.Getpid())
		}
		if d.Workers <= 0 {
			d.Workers = 4
		}
		if d.Batch <= 0 {
			d.Batch = 16
		}
		if d.Poll <= 0 {
			d.Poll = time.Second
		}
		if d.MaxAttempts <= 0 {
			d.MaxAttempts = DefaultDeliveryAttempts
		}
		if d.Backoff.Initial <= 0 || d.Backoff.Max <= 0 {
			d.Backoff = DefaultDeliveryBackoff
		}
		if d.Timeout <= 0 {
			d.Timeout = DefaultDeliveryTimeout
		}
		if d.Now == nil {
			d.Now = time.Now
		}
		if d.Rand == nil {
			d.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		}
		if d.Logger == nil {
			d.Logger = slog.New(slog.DiscardHandler)
		}
		d.wake = make(chan struct{}, 1)
	})
}

// Wake makes an idle deliverer look for due messages now.
func (d *Deliverer) Wake() {
	d.init()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is cancelled; the POSTs in flight are finished and recorded.
func (d *Deliverer) Run(ctx context.Context) {
	d.init()
	failing := false
	for ctx.Err() == nil {
		n, err := d.Once(ctx)
		if err != nil && ctx.Err() == nil {
			if !failing {
				d.Logger.Error("outbox messages not leased; trying again", "err", err.Error())
			}
			failing = true
		} else if err == nil {
			failing = false
		}
		if n == d.Batch {
			continue
		}
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-time.After(d.Poll):
		}
	}
}

// Once leases the due messages (at most Batch), delivers them and records each attempt. It
// returns how many it leased.
func (d *Deliverer) Once(ctx context.Context) (int, error) {
	d.init()
	// The lease covers the batch's attempts at the slowest timeout, Workers at a time.
	slowest := d.Timeout
	for _, s := range d.Subscribers {
		if p, ok := s.(DeliveryPolicy); ok {
			_, _, t := p.Delivery()
			slowest = max(slowest, t)
		}
	}
	lease := time.Duration((d.Batch+d.Workers-1)/d.Workers)*slowest + time.Minute
	msgs, err := d.Store.LeaseOutbox(ctx, d.Owner, d.Batch, lease)
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	// The attempts in hand finish even when ctx ends, within their own timeout.
	work := context.WithoutCancel(ctx)
	jobs := make(chan erasure.OutboxMessage)
	var wg sync.WaitGroup
	for range min(d.Workers, len(msgs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range jobs {
				d.deliver(work, m)
			}
		}()
	}
	for _, m := range msgs {
		jobs <- m
	}
	close(jobs)
	wg.Wait()
	return len(msgs), nil
}

// subscriber returns the subscriber of message m: the one whose name is m's subscriber or, for
// a subscriber sending on behalf of several ("drp:agent-1"), its prefix before ":".
func (d *Deliverer) subscriber(m erasure.OutboxMessage) erasure.Subscriber {
	var best erasure.Subscriber
	for _, s := range d.Subscribers {
		name := s.Name()
		if name == m.Subscriber {
			return s
		}
		if strings.HasPrefix(m.Subscriber, name+":") && (best == nil || len(name) > len(best.Name())) {
			best = s
		}
	}
	return best
}

// deliver makes one attempt at m and records its outcome.
func (d *Deliverer) deliver(ctx context.Context, m erasure.OutboxMessage) {
	maxAttempts, backoff, timeout := d.MaxAttempts, d.Backoff, d.Timeout
	sub := d.subscriber(m)
	if p, ok := sub.(DeliveryPolicy); ok {
		a, b, t := p.Delivery()
		if a > 0 {
			maxAttempts = a
		}
		if b.Initial > 0 && b.Max > 0 {
			backoff = b
		}
		if t > 0 {
			timeout = t
		}
	}
	start := d.Now()
	var retryAfter time.Duration
	var err error
	if sub == nil {
		err = erasure.Permanentf("subscriber %s is no longer configured", m.Subscriber)
	} else {
		retryAfter, err = d.post(ctx, sub, m, timeout)
	}
	outcome, next := "delivered", time.Time{}
	dead := false
	switch {
	case err == nil:
	case erasure.IsPermanent(err) || m.Attempts >= maxAttempts:
		outcome, dead = "dead", true
		if !erasure.IsPermanent(err) {
			err = fmt.Errorf("gave up after %d attempts: %w", m.Attempts, err)
		}
	default:
		outcome = "retry"
		d.randMu.Lock()
		next = d.Now().Add(Backoff(backoff, m.Attempts, retryAfter, d.Rand))
		d.randMu.Unlock()
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	ferr := d.Store.FinishOutbox(ctx, m.ID, d.Owner, err == nil, dead, next, msg)
	if d.Metrics != nil {
		d.Metrics.deliveries.WithLabelValues(m.Subscriber, outcome).Inc()
		d.Metrics.deliverySeconds.Observe(d.Now().Sub(start).Seconds())
	}
	log := d.Logger.With("subscriber", m.Subscriber, "message", m.ID, "event", m.Event, "key", m.Key, "attempt", m.Attempts)
	switch {
	case ferr != nil:
		log.Warn("delivery attempt not recorded; the message will be sent again", "outcome", outcome, "err", ferr.Error())
	case dead:
		log.Error("notification dead: no more attempts (an operator may retry it)", "err", msg)
	case err != nil:
		log.Warn("notification not delivered; will retry", "err", msg, "retry_in", next.Sub(d.Now()).Round(time.Second).String())
	default:
		log.Debug("notification delivered", "took", d.Now().Sub(start).Round(time.Millisecond).String())
	}
}

// post sends m to its URL with sub's headers. It returns the Retry-After of a 429 or 503, and
// an error naming the host (never the URL's path or query, which may hold a token).
func (d *Deliverer) post(ctx context.Context, sub erasure.Subscriber, m erasure.OutboxMessage, timeout time.Duration) (time.Duration, error) {
	u, err := url.Parse(m.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return 0, erasure.Permanentf("the message's url is not an http(s) URL")
	}
	where := "POST " + u.Scheme + "://" + u.Host
	headers, err := sub.Headers(m, d.Now())
	if err != nil {
		return 0, fmt.Errorf("%s: signing: %w", where, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		return 0, erasure.Permanentf("%s: %v", where, err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "erasure-notify/1")
	resp, err := d.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("%s: no answer within %s", where, timeout)
		}
		return 0, fmt.Errorf("%s: %v", where, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, nil
	}
	var retryAfter time.Duration
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			retryAfter = min(time.Duration(s)*time.Second, 24*time.Hour)
		}
	}
	return retryAfter, fmt.Errorf("%s: %d %s", where, resp.StatusCode, http.StatusText(resp.StatusCode))
}
