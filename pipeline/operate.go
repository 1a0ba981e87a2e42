package pipeline

import (
	"context"
	"strings"
	"time"

	"erasure"
)

var _ erasure.RequestResolver = (*Service)(nil)

// ResolveRequestID implements erasure.RequestResolver over a store that finds ids by prefix
// (erasure.RequestIDStore). A prefix may leave out the "r_" of every request id.
func (s *Service) ResolveRequestID(ctx context.Context, prefix string) (string, error) {
	if !strings.HasPrefix(prefix, "r_") {
		prefix = "r_" + prefix
	}
	if len(prefix) > 28 || (len(prefix) > 2 && !idEncodingChars(prefix[2:])) {
		return "", erasure.Errorf(erasure.EINVALID, "%q cannot start a request id (r_ and up to 26 of 0-9 a-z)", truncateID(prefix))
	}
	if ValidRequestID(prefix) {
		return prefix, nil
	}
	ids, ok := s.Store.(erasure.RequestIDStore)
	if !ok {
		return "", erasure.Errorf(erasure.EINVALID, "give the whole request id: this store does not find ids by prefix")
	}
	found, err := ids.RequestIDsWithPrefix(ctx, prefix, 4)
	switch {
	case err != nil:
		return "", err
	case len(found) == 0:
		return "", erasure.Errorf(erasure.ENOTFOUND, "no request id starts with %s", prefix)
	case len(found) > 1:
		more := ""
		if len(found) > 3 {
			found, more = found[:3], " and more"
		}
		return "", erasure.Errorf(erasure.ECONFLICT, "%s is ambiguous: it starts %s%s; give more characters", prefix, strings.Join(found, ", "), more)
	}
	return found[0], nil
}

func idEncodingChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("0123456789abcdefghjkmnpqrstvwxyz", rune(s[i])) {
			return false
		}
	}
	return true
}

// readyTTL is how long a readiness answer is reused: probes from several load balancers cost
// one write a second at most.
const readyTTL = time.Second

// ProbeTimeout bounds the readiness write: a store that takes longer to commit one row is
// not ready. SQLite waits for its write lock without heeding a context, so the probe runs on
// its own and readiness answers when the bound passes, whatever the probe does.
const ProbeTimeout = 2 * time.Second

// ready answers Ready from a cache of readyTTL, with at most one probe in flight.
func (s *Service) ready(ctx context.Context) error {
	s.mu.Lock()
	if !s.readyAt.IsZero() && s.now().Sub(s.readyAt) < readyTTL {
		err := s.readyErr
		s.mu.Unlock()
		return err
	}
	probe := s.probe
	if probe == nil {
		probe = make(chan struct{})
		s.probe = probe
		go s.runProbe(probe)
	}
	s.mu.Unlock()
	timer := time.NewTimer(ProbeTimeout)
	defer timer.Stop()
	select {
	case <-probe:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.readyErr
	case <-timer.C:
		return erasure.Errorf(erasure.EUNAVAILABLE, "the store did not commit a write within %s", ProbeTimeout)
	case <-ctx.Done():
		return erasure.Errorf(erasure.EUNAVAILABLE, "the store did not commit a write in time")
	}
}

// runProbe writes to the store, records the answer and closes done.
func (s *Service) runProbe(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if p, ok := s.Store.(erasure.WriteProbe); ok {
		err = p.ProbeWrite(ctx)
	} else {
		_, err = s.Store.OverdueRequests(ctx)
	}
	if err != nil {
		err = erasure.Errorf(erasure.EUNAVAILABLE, "the store cannot write: %s", erasure.OneLine(err, 300))
	}
	s.mu.Lock()
	s.readyAt, s.readyErr, s.probe = s.now(), err, nil
	s.mu.Unlock()
	close(done)
}

// markOverdue marks the requests that passed their deadline, once each, so that the trail
// (and the notifications) tell of it; it logs one line per request.
func (s *Service) markOverdue(ctx context.Context) error {
	o, ok := s.Store.(erasure.OverdueStore)
	if !ok {
		return nil
	}
	for {
		ids, err := o.MarkOverdue(ctx, 200)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if s.Logger != nil {
				s.Logger.Warn("request passed its deadline", "request", id)
			}
		}
		if len(ids) < 200 {
			return nil
		}
	}
}

// OutboxService is erasure.OutboxService over a store's outbox: listing limits, and a retried
// message is handed to the deliverer at once.
type OutboxService struct {
	Store erasure.OutboxStore
	// Deliverer, when set, is woken after a retry.
	Deliverer *Deliverer
}

var _ erasure.OutboxService = (*OutboxService)(nil)

// MaxOutboxLimit is the largest page of OutboxMessages.
const MaxOutboxLimit = 1000

// OutboxMessages implements erasure.OutboxService.
func (o *OutboxService) OutboxMessages(ctx context.Context, f erasure.OutboxFilter) ([]erasure.OutboxMessage, error) {
	if f.Limit < 0 || f.Limit > MaxOutboxLimit {
		return nil, erasure.Errorf(erasure.EINVALID, "limit must be between 1 and %d", MaxOutboxLimit)
	}
	return o.Store.OutboxMessages(ctx, f)
}

// RetryOutbox implements erasure.OutboxService.
func (o *OutboxService) RetryOutbox(ctx context.Context, id int64, actor string) (*erasure.OutboxMessage, error) {
	m, err := o.Store.RetryOutbox(ctx, id, actor)
	if err == nil && o.Deliverer != nil {
		o.Deliverer.Wake()
	}
	return m, err
}
