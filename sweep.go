package erasure

import (
	"context"
	"io"
	"strings"
	"time"
)

// SweepState is where a sweep of an offline dataset stands.
//
//	running ──commit──► committed    (every queued task of the sweep done, in one transaction)
//	   │    ──error───► failed       (its tasks queued again for the next sweep)
//	exported ──ack────► committed | failed   (mode external: a job run elsewhere reports back)
//
// A running sweep is owned by the process running it (a lease it renews); a sweep whose owner
// stopped or died is resumed, with the same subjects, by the next process that claims it (the
// leader). See SweepUnitStore for sweeps shared by several workers.
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
	// Owner is the process running an internal sweep, which holds it until LeaseUntil (see
	// SweepUnitStore); empty for an exported sweep and once the sweep ended.
	Owner      string     `json:"owner,omitempty"`
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
	// Plan names the connector's plan of a sweep split into units (PartitionedSweeper).
	Plan string `json:"-"`
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

// SweepService runs the sweeps of offline datasets: the sweep routes of the API act on it.
// Methods return *Error values: ENOTFOUND for an unknown dataset, EINVALID for one that is not
// offline or cannot do what is asked, ECONFLICT when a sweep of the dataset is open.
// Implementation: pipeline.SweepService.
type SweepService interface {
	// RunSweep starts a sweep of the dataset's queued tasks in the background and returns it
	// as started; Tasks 0 (not stored) when nothing is queued. EINVALID for a dataset swept by
	// an external job (sweep mode external) or whose connector cannot sweep.
	RunSweep(ctx context.Context, dataset, actor string) (*Sweep, error)
	// SweepStatus returns the dataset's last limit sweeps, newest first, and the sweep running
	// now with its progress.
	SweepStatus(ctx context.Context, dataset string, limit int) (*SweepStatus, error)
	// BuildIndex brings the dataset's skip index up to date and returns what it did; EINVALID
	// when its connector keeps no index (it is no Indexer), ECONFLICT while it is being swept.
	BuildIndex(ctx context.Context, dataset, actor string) (*IndexReport, error)
	// StartExport starts an external sweep (state exported) and returns it with the function
	// that writes its export: the queued identifiers, in clear. EINVALID for a format other
	// than jsonl or parquet. A sweep with Tasks 0 (nothing queued) is not stored.
	StartExport(ctx context.Context, dataset, format, actor string) (*Sweep, func(io.Writer) (int, error), error)
	// AckSweep ends an exported sweep as its external job reports; EINVALID for a bad ack,
	// ENOTFOUND for a sweep of another dataset, ECONFLICT for one that is not exported.
	AckSweep(ctx context.Context, dataset, id string, ack SweepAck, actor string) (*Sweep, error)
}

// SweepStatus is a dataset's sweep history and the sweep running now.
type SweepStatus struct {
	Dataset string `json:"dataset"`
	// Running is the sweep running now in the server, with Progress its connector's last
	// report (nil before the first one or for connectors that report none).
	Running  *Sweep         `json:"running,omitempty"`
	Progress *SweepProgress `json:"progress,omitempty"`
	// Sweeps are the last sweeps, newest first.
	Sweeps []Sweep `json:"sweeps"`
}

// SweepProgress is how far a running sweep, or a skip index build, has got: the connector
// reports it after each partition and now and then within one, for people to see rate and ETA.
type SweepProgress struct {
	PartitionsDone  int `json:"partitions_done"`
	PartitionsTotal int `json:"partitions_total"`
	// BytesDone is the size of the partitions done (read, skipped or already handled);
	// BytesTotal the size of all. Their ratio is the share of the work done.
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
	// BytesRead is the partition bytes actually read so far, IndexBytes the skip index bytes.
	BytesRead   int64         `json:"bytes_read"`
	IndexBytes  int64         `json:"index_bytes"`
	RowsScanned int64         `json:"rows_scanned"`
	RowsRemoved int64         `json:"rows_removed"`
	Elapsed     time.Duration `json:"elapsed"`
}

// SweepProgressFunc receives progress reports. A connector serializes its calls; a slow
// function slows the sweep, so it should only store or print the value.
type SweepProgressFunc func(SweepProgress)

type sweepProgressKey struct{}

// ContextWithSweepProgress returns a context whose sweeps report their progress to fn: a
// Sweeper or Indexer that reports progress calls SweepProgressFrom(ctx).
func ContextWithSweepProgress(ctx context.Context, fn SweepProgressFunc) context.Context {
	return context.WithValue(ctx, sweepProgressKey{}, fn)
}

// SweepProgressFrom returns the function ctx's sweep reports its progress to, or nil.
func SweepProgressFrom(ctx context.Context) SweepProgressFunc {
	fn, _ := ctx.Value(sweepProgressKey{}).(SweepProgressFunc)
	return fn
}

// Indexer is a connector of an offline dataset that keeps a skip index, so that a sweep reads
// only the partitions that may hold a queued subject. BuildIndex brings the index up to date
// and reports what it did; progress may be nil. Errors are classified as for Sweeper.
type Indexer interface {
	BuildIndex(ctx context.Context, progress SweepProgressFunc) (IndexReport, error)
}

// IndexReport is what a skip index build did.
type IndexReport struct {
	Partitions int           `json:"partitions"`
	Built      int           `json:"built"`   // index entries written
	Current    int           `json:"current"` // entries already up to date
	Rows       int64         `json:"rows_scanned"`
	BytesRead  int64         `json:"bytes_read"`
	Elapsed    time.Duration `json:"elapsed"`
}

// MaxSweepAckError is the longest error an external job may report, in bytes.
const MaxSweepAckError = 1024

// SweepAck is an external job's report on an exported sweep.
type SweepAck struct {
	Status  AckStatus `json:"status"`
	Removed int64     `json:"removed"`
	// Error says what went wrong, for status failed only.
	Error string `json:"error,omitempty"`
}

// Validate checks an ack by itself: a status done or failed, removed not negative, an error
// only for a failure and at most MaxSweepAckError bytes. EINVALID.
func (a SweepAck) Validate() error {
	switch {
	case a.Status != AckDone && a.Status != AckFailed:
		return Errorf(EINVALID, `status must be "done" or "failed"`)
	case a.Removed < 0:
		return Errorf(EINVALID, "removed must not be negative")
	case len(a.Error) > MaxSweepAckError:
		return Errorf(EINVALID, "error is longer than %d bytes", MaxSweepAckError)
	case a.Status == AckDone && strings.TrimSpace(a.Error) != "":
		return Errorf(EINVALID, `error is only for status "failed"`)
	}
	return nil
}
