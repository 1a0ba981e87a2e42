package audit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/audit"
)

// memTrail is a trail of blocks in memory.
type memTrail struct{ blocks []erasure.AuditBlock }

func (m *memTrail) Audit(ctx context.Context, f erasure.AuditFilter) ([]erasure.AuditEvent, error) {
	if len(m.blocks) == 0 {
		return nil, nil
	}
	evs, err := audit.Events(&m.blocks[0])
	return evs, err
}

func (m *memTrail) AuditBlocks(ctx context.Context, after int64, limit int) ([]erasure.AuditBlock, error) {
	var out []erasure.AuditBlock
	for _, b := range m.blocks {
		if b.Seq > after && len(out) < limit {
			out = append(out, b)
		}
	}
	return out, nil
}

func (m *memTrail) AuditHead(ctx context.Context) (erasure.AuditHead, error) {
	if len(m.blocks) == 0 {
		return erasure.AuditHead{Hash: audit.Genesis}, nil
	}
	b := m.blocks[len(m.blocks)-1]
	return erasure.AuditHead{Block: b.Seq, Hash: b.Hash, Events: b.FirstEvent + int64(b.Events) - 1}, nil
}

func (m *memTrail) append(chain *audit.Chain, n int) {
	prev, first := audit.Genesis, int64(1)
	if k := len(m.blocks); k > 0 {
		prev, first = m.blocks[k-1].Hash, m.blocks[k-1].FirstEvent+int64(m.blocks[k-1].Events)
	}
	evs := make([]erasure.AuditEvent, n)
	for i := range evs {
		evs[i] = erasure.AuditEvent{Time: time.UnixMilli(1_700_000_000_000), Actor: "a", Type: "t", RequestID: "r_1"}
	}
	b := audit.NewBlock(int64(len(m.blocks)+1), first, time.UnixMilli(1_700_000_000_000), evs)
	chain.Seal(prev, &b)
	m.blocks = append(m.blocks, b)
}

func TestChecker(t *testing.T) {
	chain, _ := audit.NewChain([]byte("0123456789abcdef0123456789abcdef"))
	trail := &memTrail{}
	for i := 0; i < 40; i++ {
		trail.append(chain, 3)
	}
	c := audit.NewChecker(trail, chain)
	ctx := context.Background()
	rep, err := c.Advance(ctx, time.Minute, time.Unix(0, 0))
	if err != nil || !rep.Complete || rep.Verified != rep.Head || rep.Verified.Block != 40 || rep.Verified.Events != 120 {
		t.Fatalf("first advance: %+v %v", rep, err)
	}
	trail.append(chain, 2)
	if rep, _ := c.Report(ctx); rep.Complete || rep.Verified.Block != 40 || rep.Head.Block != 41 {
		t.Fatalf("report after an append: %+v", rep)
	}
	if rep, _ := c.Advance(ctx, time.Minute, time.Unix(1, 0)); !rep.Complete || rep.Verified.Block != 41 {
		t.Fatalf("second advance: %+v", rep)
	}
	// A block appended with another key breaks the trail where it is.
	other, _ := audit.NewChain([]byte("another-key-0123456789abcdef0123"))
	trail.append(other, 1)
	trail.append(chain, 1)
	rep, _ = c.Advance(ctx, time.Minute, time.Unix(2, 0))
	if rep.Complete || !strings.Contains(rep.Broken, "block 42") || rep.Verified.Block != 41 {
		t.Fatalf("broken trail: %+v", rep)
	}
	// A zero budget verifies nothing more but still reports.
	fresh := audit.NewChecker(trail, chain)
	if rep, err := fresh.Advance(ctx, 0, time.Unix(3, 0)); err != nil || rep.Complete || rep.Verified.Block != 0 {
		t.Fatalf("zero budget: %+v %v", rep, err)
	}
}
