package erasure

import (
	"context"
	"time"
)

// SweepState is where a sweep of an offline dataset stands.
//
//	running ──commit──► committed    (every queued task of the sweep done, in one transaction)
//	   │    ──error───► failed       (its tasks queued again for the next sweep)
//	exported ──ack────► committed | failed   (mode external: a job run elsewhere reports back)
//
// A sweep still running when the server stops is resumed at start with the same subjects.
type SweepState string

const (
	SweepRunning   SweepState = "running"
	SweepExported  SweepState = "exported"
	SweepCommitted SweepState = "committed"
	SweepFailed    SweepState = "failed"
)

// Sweep is one batched pass over an offline dataset.
type Sweep struct {
	ID       string     `json:"id"`
	Dataset  string     `json:"dataset"`
	State    SweepState `json:"state"`
	Mode     SweepMode  `json:"mode"`
	Actor    string     `json:"actor"`
	Tasks    int        `json:"tasks"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Error    string     `json:"error,omitempty"`
	SweepResult
}

// SweepStore keeps sweeps. Implementations: store/sqlite.
type SweepStore interface {
	// StartSweep creates a sweep of dataset holding every task queued for it and not in a sweep
	// yet, and returns it with their subjects; ECONFLICT when the dataset has a sweep running or
	// exported, ENOTFOUND-free: a sweep with no task is returned with Tasks 0 and not stored.
	StartSweep(ctx context.Context, dataset, id string, mode SweepMode, actor string) (*Sweep, []SweepSubject, error)
	// SweepSubjects returns the subjects of a sweep (to resume it); ENOTFOUND.
	SweepSubjects(ctx context.Context, id string) ([]SweepSubject, error)
	// FinishSweep ends a running or exported sweep: with err nil every task of the sweep still
	// queued becomes done, in one transaction with its audit event; otherwise the sweep fails
	// and its tasks return to the queue. ENOTFOUND, ECONFLICT when the sweep already ended.
	FinishSweep(ctx context.Context, id string, res SweepResult, sweepErr error, actor string) (*Sweep, error)
	// Sweep returns one sweep; ENOTFOUND.
	Sweep(ctx context.Context, id string) (*Sweep, error)
	// Sweeps lists a dataset's sweeps, newest first (all datasets when dataset is "").
	Sweeps(ctx context.Context, dataset string, limit int) ([]Sweep, error)
	// OpenSweeps lists the sweeps running (to resume at start) or exported.
	OpenSweeps(ctx context.Context) ([]Sweep, error)
	// QueuedTasks counts a dataset's tasks queued and not in a sweep, and the earliest deadline
	// of their requests (zero when none).
	QueuedTasks(ctx context.Context, dataset string) (int, time.Time, error)
}

// SweepMode says who erases an offline dataset's rows in a sweep.
type SweepMode string

const (
	// SweepInternal sweeps are run by the connector's Sweeper inside erasure.
	SweepInternal SweepMode = "internal"
	// SweepExternal sweeps are exported to a job run elsewhere, which acknowledges them.
	SweepExternal SweepMode = "external"
)

// Valid reports whether m is a known sweep mode.
func (m SweepMode) Valid() bool { return m == SweepInternal || m == SweepExternal }
