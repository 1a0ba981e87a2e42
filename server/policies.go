package server

import (
	"context"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/pipeline"
	"erasure/registry"
)

// The policies' components: GraceWindows ends the grace windows that are over, in any process
// (each request's end is one transaction, so several processes may run it at once);
// Retention runs the datasets' retention on schedule and destroys the escrow keys whose period
// ended, in one process (a leader), and gives replays started through the API their lifetime.

// GraceEvery is how often GraceWindows looks for grace windows that are over; RetentionEvery
// how often Retention looks for datasets due.
const (
	GraceEvery     = 10 * time.Second
	RetentionEvery = time.Minute
)

// policyKeys is what the store needs to leave completed requests behind (see
// erasure.Completion), from the configuration and the audit key.
type policyKeys struct {
	completion  erasure.Completion
	suppression erasure.Hasher
	escrow      erasure.EscrowCipher
}

func openPolicies(cfg *registry.Config, auditKey []byte) (policyKeys, error) {
	var p policyKeys
	p.completion.Suppress = cfg.Suppression.On()
	p.completion.SuppressTypes = cfg.Suppression.Types
	sk := audit.SuppressionKey(auditKey)
	if cfg.Suppression.Key != "" {
		k, err := hex.DecodeString(strings.TrimSpace(cfg.Suppression.Key))
		if err != nil {
			return p, erasure.Errorf(erasure.EINVALID, "suppression.key is not hex")
		}
		sk = k
	}
	h, err := audit.NewHasher(sk)
	if err != nil {
		return p, err
	}
	p.suppression = h
	for _, d := range cfg.Datasets {
		if d.Escrow > 0 {
			if p.completion.Escrow == nil {
				p.completion.Escrow = map[string]time.Duration{}
			}
			p.completion.Escrow[d.Name] = d.Escrow
		}
	}
	if len(p.completion.Escrow) > 0 {
		if p.escrow, err = audit.NewEscrow(auditKey); err != nil {
			return p, err
		}
	}
	return p, nil
}

// GraceWindows ends the grace windows that are over: their erasure starts.
type GraceWindows struct {
	Policies *pipeline.Policies
	Every    time.Duration
	Logger   *slog.Logger
	group
}

// GraceWindows returns the grace windows component of s, looking every interval.
func (s *Server) GraceWindows(every time.Duration) *GraceWindows {
	return &GraceWindows{Policies: s.Policies, Every: every, Logger: s.Logger}
}

// Start ends the windows over now and every interval until ctx is cancelled.
func (g *GraceWindows) Start(ctx context.Context) error {
	g.goRun(func() {
		tick(ctx, g.Every, func() {
			if _, err := g.Policies.EndGraceWindows(ctx); err != nil && ctx.Err() == nil && g.Logger != nil {
				g.Logger.Error("ending grace windows", "err", err)
			}
		})
	})
	return nil
}

// Retention runs the retention of the datasets that are due, destroys the escrow keys whose
// period ended, and gives background replays their lifetime.
type Retention struct {
	Policies *pipeline.Policies
	Every    time.Duration
	Logger   *slog.Logger
	group
}

// Retention returns the retention component of s, looking every interval.
func (s *Server) Retention(every time.Duration) *Retention {
	return &Retention{Policies: s.Policies, Every: every, Logger: s.Logger}
}

// Start runs the schedule now and every interval until ctx is cancelled; replays started
// meanwhile stop with ctx too, and Wait waits for them.
func (r *Retention) Start(ctx context.Context) error {
	r.Policies.Start(ctx)
	r.goRun(func() {
		tick(ctx, r.Every, func() {
			r.Policies.RetentionDue(ctx)
			if n, err := r.Policies.Store.DestroyEscrowKeys(ctx); err != nil && ctx.Err() == nil && r.Logger != nil {
				r.Logger.Error("destroying escrow keys", "err", err)
			} else if n > 0 && r.Logger != nil {
				r.Logger.Info("escrow keys destroyed: their period ended", "keys", n)
			}
		})
	})
	r.goRun(func() { <-ctx.Done(); r.Policies.Wait() })
	return nil
}

// tick calls fn now and every interval until ctx is cancelled.
func tick(ctx context.Context, every time.Duration, fn func()) {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		fn()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
