package server

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"erasure/store/sqlstore"
)

// Election says which of the processes sharing a store leads. TryLead takes the lead when no
// other process has it: a Lead, or nil when another process leads. Errors are for a store that
// does not answer.
type Election interface {
	TryLead(ctx context.Context) (Lead, error)
}

// Lead is the lead held by this process: Lost is closed when it is lost (the store says so, or
// can no longer be asked), Release gives it up.
type Lead interface {
	Lost() <-chan struct{}
	Release()
}

// StoreElection elects the leader through the store's leader lock (sqlstore.LeaderLock: a
// PostgreSQL advisory lock on a connection of its own; always granted on SQLite).
type StoreElection struct{ DB *sqlstore.DB }

// TryLead implements Election.
func (e StoreElection) TryLead(ctx context.Context) (Lead, error) {
	l, err := e.DB.TryLead(ctx)
	if err != nil || l == nil {
		return nil, err
	}
	return l, nil
}

// Leadership is a Component that runs other components while this process leads: it tries to
// take the lead every Retry; once it leads, it starts a fresh component from each of Parts;
// when the lead is lost it stops them (each finishing what it has in hand) and tries again.
// Whoever leads after it starts its own. So work that must run once per deployment runs in
// one process at a time, and within about Retry of its leader's death in another.
type Leadership struct {
	Election Election
	// Parts build the components to run while leading (called at each new lead).
	Parts []func() Component
	// Retry is how often a process that does not lead tries again (default 1s).
	Retry time.Duration
	// Grace is how long a new leader waits before it starts the parts: long enough for a
	// leader that lost the lead without dying (its connection to the store broke) to notice
	// and stop its own. StoreElection on PostgreSQL needs 2 × sqlstore.PingEvery.
	Grace  time.Duration
	Logger *slog.Logger

	group
	leading atomic.Bool
	terms   atomic.Int64
}

// Leadership returns the leadership component of s, running LeaderParts.
func (s *Server) Leadership() *Leadership {
	l := &Leadership{Election: StoreElection{DB: s.Store}, Parts: s.LeaderParts(), Logger: s.Logger}
	if s.Shared {
		l.Grace = 2 * sqlstore.PingEvery
	}
	return l
}

// LeaderParts are the components that run once per deployment, in the leader: the sweeps
// (schedule, and resuming the sweeps whose process died), the overdue watcher, the canary
// schedule, the grace windows, retention, the notifier (one reader of the audit trail into the
// outbox) and the audit checkpoints. Work of the same kind belongs here.
func (s *Server) LeaderParts() []func() Component {
	return []func() Component{
		func() Component { return s.Sweeps() },
		func() Component { return s.OverdueWatcher(OverdueEvery) },
		func() Component { return s.CanarySchedule() },
		func() Component { return s.GraceWindows(GraceEvery) },
		func() Component { return s.Retention(RetentionEvery) },
		func() Component { return s.Notifier() },
		func() Component { return s.Checkpointer() },
	}
}

// Leading reports whether the process leads now.
func (l *Leadership) Leading() bool { return l.leading.Load() }

// Terms counts the times this process took the lead.
func (l *Leadership) Terms() int64 { return l.terms.Load() }

// Start campaigns in the background until ctx is cancelled; Wait returns once the parts of a
// lead held then have stopped and the lead is released.
func (l *Leadership) Start(ctx context.Context) error {
	if l.Retry <= 0 {
		l.Retry = time.Second
	}
	log := l.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.WithGroup("leader")
	l.goRun(func() {
		failing := false
		for ctx.Err() == nil {
			lead, err := l.Election.TryLead(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				if !failing {
					log.Warn("cannot tell who leads; trying again", "err", err)
				}
				failing = true
			case lead != nil:
				failing = false
				l.serve(ctx, lead, log)
				continue
			default:
				failing = false
			}
			select {
			case <-ctx.Done():
			case <-time.After(l.Retry):
			}
		}
	})
	return nil
}

// serve runs the parts while lead holds, then stops them and releases it.
func (l *Leadership) serve(ctx context.Context, lead Lead, log *slog.Logger) {
	if l.Grace > 0 {
		select {
		case <-ctx.Done():
			lead.Release()
			return
		case <-lead.Lost():
			lead.Release()
			return
		case <-time.After(l.Grace):
		}
	}
	l.terms.Add(1)
	l.leading.Store(true)
	log.Info("leading: running the work done once per deployment", "parts", len(l.Parts))
	tctx, cancel := context.WithCancel(ctx)
	var running []Component
	for _, build := range l.Parts {
		c := build()
		if err := c.Start(tctx); err != nil {
			log.Error("a leader's part did not start", "err", err)
			continue
		}
		running = append(running, c)
	}
	lost := false
	select {
	case <-ctx.Done():
	case <-lead.Lost():
		lost = true
	}
	cancel()
	var wg sync.WaitGroup
	for _, c := range running {
		wg.Add(1)
		go func() { defer wg.Done(); c.Wait() }()
	}
	wg.Wait()
	lead.Release()
	l.leading.Store(false)
	if lost {
		log.Warn("lost the lead; its work stopped here")
	} else {
		log.Info("stopped leading")
	}
}
