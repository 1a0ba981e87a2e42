package files

import (
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"sync"

	"erasure"
)

// A sweep shared by the workers of a deployment (erasure.PartitionedSweeper): PlanSweep begins
// it (the journal and the partition list: one unit per partition), SweepUnit runs
// RewritePartition for one partition on any worker that sees the snapshot's filesystem, and
// CommitSweep finishes it as Resume would (partitions that appeared or changed since are
// swept there) and swaps every prepared partition in. Units take no lock: RewritePartition
// is safe in several processes at once, each attempt writing its own temporary file. The
// commit takes the snapshot's lock, like Sweep.

var _ erasure.PartitionedSweeper = (*Connector)(nil)

// PlanSweep begins the sweep of batch (Begin) and returns its plan: the journal's id and one
// unit per partition. A batch with no value of the key's identifier type, or a snapshot with
// no partition, has a plan with no unit (CommitSweep ends it). Errors as for Sweep.
func (c *Connector) PlanSweep(ctx context.Context, batch []erasure.SweepSubject) (erasure.SweepPlan, error) {
	keys := c.Keys(batch)
	if len(keys) == 0 {
		return erasure.SweepPlan{}, nil
	}
	plan, err := c.Begin(ctx, keys)
	if err != nil {
		return erasure.SweepPlan{}, interrupted(err)
	}
	c.plans.put(plan)
	out := erasure.SweepPlan{ID: plan.ID}
	for _, p := range plan.Partitions {
		out.Units = append(out.Units, erasure.SweepUnitSpec{Name: p.Path, Size: p.Size})
	}
	return out, nil
}

// SweepUnit prepares partition unit of sweep plan (RewritePartition). A unit already handled
// and unchanged costs a stat. EINVALID for a unit that is not a partition path of this
// snapshot; ENOTFOUND when the plan's journal is gone (the sweep committed or was aborted):
// nothing is written then. Other errors as for Sweep.
func (c *Connector) SweepUnit(ctx context.Context, planID, unit string) (erasure.SweepResult, error) {
	if !filepath.IsLocal(filepath.FromSlash(unit)) || path.Clean(unit) != unit || !c.matches(path.Base(unit)) {
		return erasure.SweepResult{}, erasure.Errorf(erasure.EINVALID, "files: %q is not a partition of %s", unit, c.cfg.Path)
	}
	plan, err := c.openUnitPlan(planID)
	if err != nil {
		return erasure.SweepResult{}, err
	}
	var size int64
	if st, err := os.Stat(c.abs(unit)); err == nil {
		size = st.Size()
	}
	res, err := c.RewritePartition(ctx, plan, Partition{Path: unit, Size: size})
	if err != nil {
		return erasure.SweepResult{}, interrupted(err)
	}
	// The journal may have gone while the partition was read (another process aborted or
	// committed the sweep): then the marker could not be written and nothing is left behind.
	return erasure.SweepResult{Partitions: 1, Scanned: res.Rows, Removed: res.Removed, Bytes: res.BytesRead}, nil
}

// openUnitPlan returns the plan of a journal that exists, without listing the partitions (a
// unit needs only the key set). A plan's journal is written once under its id, so a plan
// cached once stays right; whether its journal is still there is checked every time.
func (c *Connector) openUnitPlan(id string) (*Plan, error) {
	if _, err := os.Stat(filepath.Join(c.journalDir(id), "sweep.json")); err != nil {
		if _, herr := c.openJournal(id); herr != nil {
			return nil, herr // EINVALID for a malformed id, ENOTFOUND, or the I/O error
		}
	}
	if p := c.plans.get(id); p != nil {
		return p, nil
	}
	head, err := c.openJournal(id)
	if err != nil {
		return nil, err
	}
	p := &Plan{ID: head.ID, Keys: head.Keys, keys: newKeySet(head.Keys), started: head.Started, known: map[string]bool{}}
	c.plans.put(p)
	return p, nil
}

// CommitSweep finishes sweep plan under the snapshot's lock: every partition not prepared
// since the plan began (new, changed, or whose unit never ran) is rewritten here, then every
// prepared partition is swapped in (Commit). When the plan's journal is gone, the batch is
// swept again whole, which changes nothing when another process committed it. A journal that
// is not believed (as Resume says) is discarded with the plan's temporary files, and the
// batch is swept again whole too: its keys come from the caller, not from the journal. Errors
// as for Sweep; a failure before the swap aborts the plan (nothing changes).
func (c *Connector) CommitSweep(ctx context.Context, planID string, batch []erasure.SweepSubject) (erasure.SweepResult, error) {
	keys := c.Keys(batch)
	if len(keys) == 0 && planID == "" {
		return erasure.SweepResult{}, nil
	}
	unlock, err := c.lock()
	if err != nil {
		return erasure.SweepResult{}, err
	}
	defer unlock()
	id := planID
	if id != "" {
		if _, err := c.openJournal(id); erasure.ErrorCode(err) == erasure.ENOTFOUND {
			id = ""
		} else if why, damaged := damagedJournal(err); damaged {
			// Left in place, nothing would ever remove it (a new sweep begins a new journal),
			// and an unsealed one holds the keys in clear.
			c.discardJournal(id, why)
			id = ""
		} else if err != nil {
			return erasure.SweepResult{}, interrupted(err)
		}
	}
	if id == "" && len(keys) == 0 {
		return erasure.SweepResult{}, nil
	}
	rep, err := c.run(ctx, keys, id, batch)
	c.plans.drop(planID)
	return c.result(rep, batch, err), interrupted(err)
}

// AbortSweep abandons plan before its commit: its temporary files and journal are removed and
// no partition changes. Aborting a plan that is gone does nothing; EINVALID for a malformed id.
func (c *Connector) AbortSweep(ctx context.Context, planID string) error {
	if planID == "" {
		return nil
	}
	if _, err := c.openJournal(planID); err != nil {
		if erasure.ErrorCode(err) == erasure.ENOTFOUND {
			return nil
		}
		var pe *erasure.PermanentError
		if !errors.As(err, &pe) {
			return err
		}
		// A damaged journal is abandoned all the same.
	}
	c.Abort(&Plan{ID: planID})
	c.plans.drop(planID)
	return nil
}

// planCache keeps the key sets of the last plans this process worked on.
type planCache struct {
	mu sync.Mutex
	m  map[string]*Plan
}

func (pc *planCache) get(id string) *Plan {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.m[id]
}

func (pc *planCache) put(p *Plan) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.m == nil || len(pc.m) >= 8 {
		pc.m = map[string]*Plan{}
	}
	pc.m[p.ID] = p
}

func (pc *planCache) drop(id string) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	delete(pc.m, id)
}
