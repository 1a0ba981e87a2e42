package erasure

import (
	"context"
	"time"
)

// Audit event types of shared sweeps.
const (
	EventSweepPlanned = "sweep.planned" // a sweep was split into units (one per partition)
	EventSweepUnit    = "sweep.unit"    // one unit of a sweep ended: done by a worker, or failed
)

// A sweep of a dataset whose connector is a PartitionedSweeper is shared by the workers of a
// deployment (several processes on one PostgreSQL store, or the goroutines of one process):
//
//	StartOwnedSweep ──► PlanSweep (the connector's plan: one unit per partition)
//	      │                  │
//	      │  owner holds      ▼
//	      │  the sweep's   units: pending ──lease──► running ──► done
//	      │  lease           ▲   (any worker)          │  └────► failed (the sweep fails)
//	      │                  └── lease expired, retry ──┘
//	      │                 (a unit not done when its sweep ends is cancelled)
//	      ▼
//	every unit done ──► the connector's CommitSweep (two phases, as a whole sweep) ──► FinishSweep
//
// The process that started the sweep owns it while it renews its lease (ClaimSweep); a sweep
// whose owner died is claimed by another process (the leader resumes it), never by a second
// one while the first runs. Units are leased to workers like tasks: a worker killed during a
// unit loses nothing, the unit is leased again once its lease expires, and only the result of
// the lease holder is kept, so every unit is done exactly once in the audit trail.

// SweepUnitState is where one unit of a shared sweep stands.
type SweepUnitState string

const (
	UnitPending SweepUnitState = "pending" // waits for a worker (again after a retry)
	UnitRunning SweepUnitState = "running" // leased by a worker until DueAt
	UnitDone    SweepUnitState = "done"    // the partition is ready for the sweep's commit
	UnitFailed  SweepUnitState = "failed"  // the unit cannot be done: its sweep fails
	// UnitCancelled: the sweep ended (failed) before the unit was done.
	UnitCancelled SweepUnitState = "cancelled"
)

// SweepPlan is how a PartitionedSweeper splits a sweep: ID names what the connector recorded
// (its journal), Units are its partitions.
type SweepPlan struct {
	ID    string
	Units []SweepUnitSpec
}

// SweepUnitSpec is one unit of a plan: a partition's name (relative to the dataset, never a
// subject's identifier) and its size in bytes.
type SweepUnitSpec struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// SweepUnit is one unit of a shared sweep as the store keeps it.
type SweepUnit struct {
	ID      int64          `json:"id"`
	SweepID string         `json:"sweep_id"`
	Dataset string         `json:"dataset"`
	Plan    string         `json:"-"`
	Name    string         `json:"name"`
	Size    int64          `json:"size"`
	State   SweepUnitState `json:"state"`
	// Attempts counts leases, including one running now.
	Attempts int    `json:"attempts"`
	Owner    string `json:"owner,omitempty"`
	// DueAt is when a pending unit may be leased, and when a running unit's lease expires.
	DueAt      time.Time  `json:"due_at"`
	Error      string     `json:"error,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Result is what the unit did (rows scanned and removed, bytes read), once done.
	Result SweepResult `json:"result"`
	// Guard is set when the unit failed at its dataset's guard (max_removed_share): the
	// process running the sweep may not be the one that ran the unit, so the guard's counts
	// travel with the unit and the sweep fails with them (a *GuardError), not with its text.
	Guard *GuardError `json:"guard,omitempty"`
}

// SweepUnitResult is the outcome of one leased attempt of a unit, written by FinishSweepUnits.
type SweepUnitResult struct {
	UnitID  int64
	SweepID string
	// Owner and Attempt identify the lease; a result whose lease was lost is dropped.
	Owner   string
	Attempt int
	// State is the next state: done, pending (a retry at DueAt) or failed (the sweep fails).
	State  SweepUnitState
	DueAt  time.Time
	Error  string
	Result SweepResult
	// Guard is the guard that stopped a failed unit, if one did; kept only with UnitFailed.
	Guard *GuardError
}

// SweepUnitStore keeps who runs each sweep and the units shared sweeps are split into. Every
// method that changes a unit or a sweep's plan writes its audit event in the same transaction.
// Implementation: store/sqlstore (SQLite and PostgreSQL); conformance: store/storetest.
type SweepUnitStore interface {
	// StartOwnedSweep is StartSweep for an internal sweep run by owner, who holds its lease
	// until now+lease (ClaimSweep renews it). Errors as StartSweep.
	StartOwnedSweep(ctx context.Context, dataset, id, actor, owner string, lease time.Duration) (*Sweep, []SweepSubject, error)
	// ClaimSweep makes owner the holder of the running sweep id until now+lease, when nobody
	// holds it (its lease expired, or it never had one) or owner does already (a renewal). A
	// lease of 0 releases the sweep for anyone to claim at once. ENOTFOUND; ECONFLICT when the
	// sweep is not running or another owner holds it.
	ClaimSweep(ctx context.Context, id, owner string, lease time.Duration) (*Sweep, error)
	// PlanSweep records plan and its units (pending, due now) for the running sweep id, which
	// owner must hold, with a sweep.planned event. A sweep is planned once: when it has a plan
	// already, that plan's units are returned and plan is ignored. EINVALID for a plan without
	// an id or units, or with an empty or repeated unit name; ENOTFOUND; ECONFLICT when owner
	// does not hold the sweep or it is not running.
	PlanSweep(ctx context.Context, id, owner string, plan SweepPlan) ([]SweepUnit, error)
	// LeaseSweepUnits claims up to n due units of running sweeps (of sweep id only, when id is
	// not empty) for owner until now+lease: pending units whose DueAt has passed and running
	// units whose lease expired, oldest due first. Each leased unit's Attempts is incremented.
	// Safe with concurrent callers (PostgreSQL: FOR UPDATE SKIP LOCKED).
	LeaseSweepUnits(ctx context.Context, id, owner string, n int, lease time.Duration) ([]SweepUnit, error)
	// ExtendSweepUnits pushes the lease of running units held by owner to now+lease.
	ExtendSweepUnits(ctx context.Context, owner string, ids []int64, lease time.Duration) error
	// FinishSweepUnits writes each result whose lease is still held (the unit running, owned
	// by Owner at Attempt, its sweep running) with a sweep.unit event for a unit done or
	// failed, in one transaction, and returns the ids of the results dropped. A failed
	// result's Guard is kept with its unit (read back by SweepUnits) and its event says
	// "guard": "tripped". EINVALID for a state a unit's attempt does not end in, negative
	// counts, or a guard that cannot be stored (a MaxShare not finite).
	FinishSweepUnits(ctx context.Context, results []SweepUnitResult) (dropped []int64, err error)
	// SweepUnits returns the units of sweep id in name order (none before it is planned).
	SweepUnits(ctx context.Context, id string) ([]SweepUnit, error)
	// ReleaseSweepLeases makes every running sweep claimable and every running unit due now:
	// a single-node server starting up owns what the processes before it were running.
	ReleaseSweepLeases(ctx context.Context) (int, error)
}

// PartitionedSweeper is a Sweeper whose sweeps split into one unit per partition, so that the
// workers of a deployment share one sweep. The three steps are the two phases of Sweep with
// the middle shared: PlanSweep begins the sweep of batch once; SweepUnit prepares one
// partition (read it, write it without the batch's rows beside it), on any worker of any
// process that sees the dataset's storage, as often as needed (it is idempotent, and a unit
// run twice at once leaves one whole result); CommitSweep, once every unit is done, swaps
// every prepared partition in and ends the sweep (partitions that appeared since are swept
// there); AbortSweep abandons a plan before its commit, changing nothing. Errors are
// classified as for Sweep (transient or permanent).
type PartitionedSweeper interface {
	Sweeper
	PlanSweep(ctx context.Context, batch []SweepSubject) (SweepPlan, error)
	SweepUnit(ctx context.Context, plan, unit string) (SweepResult, error)
	// CommitSweep commits plan; when the plan is gone (another process committed or aborted
	// it), it sweeps batch again whole, which is idempotent.
	CommitSweep(ctx context.Context, plan string, batch []SweepSubject) (SweepResult, error)
	AbortSweep(ctx context.Context, plan string) error
}
