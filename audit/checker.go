package audit

import (
	"context"
	"sync"
	"time"

	"erasure"
)

// Checker verifies a store's trail a little at a time and remembers how far it got, so that a
// page can say "verified up to block N" without reading a long trail on every view: each
// Advance verifies the blocks appended since the last call, within a time budget. What was
// verified stays verified only while the process runs (the trail is append-only; a rewrite of
// verified blocks is caught by `erasure audit verify`, which reads everything again).
type Checker struct {
	mu     sync.Mutex
	trail  Trail
	v      *Verifier
	legacy bool // the legacy part was read
	after  int64
	block  int64
	broken string
	at     time.Time
}

// CheckReport is how far a Checker got.
type CheckReport struct {
	// Verified is the last point of the chain verified; Head is the store's head when it looked.
	Verified erasure.AuditHead `json:"verified"`
	Head     erasure.AuditHead `json:"head"`
	// Complete is true when Verified is Head: the whole trail verified.
	Complete bool `json:"complete"`
	// Broken says where the trail is broken; verification stops there.
	Broken string `json:"broken,omitempty"`
	// CheckedAt is when the checker last advanced (zero before).
	CheckedAt time.Time `json:"checked_at"`
}

// NewChecker returns a checker of trail sealed by chain.
func NewChecker(trail Trail, chain erasure.AuditChain) *Checker {
	return &Checker{trail: trail, v: NewVerifier(chain)}
}

// Advance verifies what follows the last point verified, for about budget at most, and
// reports. Errors are the store's; a broken trail is in the report.
func (c *Checker) Advance(ctx context.Context, budget time.Duration, now time.Time) (CheckReport, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	deadline := time.Now().Add(budget)
	head, err := c.trail.AuditHead(ctx)
	if err != nil {
		return c.report(head), err
	}
	c.at = now
	for !c.legacy && c.broken == "" && time.Now().Before(deadline) {
		evs, err := c.trail.Audit(ctx, erasure.AuditFilter{After: c.after, Limit: 1000})
		if err != nil {
			return c.report(head), err
		}
		for i := range evs {
			if evs[i].Block != 0 {
				c.legacy = true
				break
			}
			if err := c.v.AddLegacy(&evs[i]); err != nil {
				c.broken = err.Error()
				return c.report(head), nil
			}
			c.after = evs[i].Seq
		}
		if len(evs) < 1000 {
			c.legacy = true
		}
	}
	for c.legacy && c.broken == "" && c.block < head.Block && time.Now().Before(deadline) {
		// Small reads, so that the budget holds even with large blocks.
		bs, err := c.trail.AuditBlocks(ctx, c.block, 16)
		if err != nil {
			return c.report(head), err
		}
		if len(bs) == 0 {
			c.broken = "the store's head is after the last block: blocks are missing"
			break
		}
		for i := range bs {
			if err := c.v.Add(&bs[i]); err != nil {
				c.broken = err.Error()
				break
			}
			c.block = bs[i].Seq
			if !time.Now().Before(deadline) {
				break
			}
		}
	}
	return c.report(head), nil
}

// Report returns how far the checker got, without advancing.
func (c *Checker) Report(ctx context.Context) (CheckReport, error) {
	head, err := c.trail.AuditHead(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.report(head), err
}

func (c *Checker) report(head erasure.AuditHead) CheckReport {
	got := c.v.Head()
	return CheckReport{Verified: got, Head: head, Complete: c.broken == "" && c.legacy && got == head, Broken: c.broken, CheckedAt: c.at}
}
