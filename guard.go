package erasure

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Guard bounds the blast radius of an erasure. A key that starts matching far more than one
// person (a wrong column, a pattern gone wide, a service answering "everything" for an empty
// id) must stop an erasure before it commits, not after. Connectors enforce it before anything
// is committed wherever the system allows (SQL counts inside the transaction and rolls back;
// Redis counts the SCAN matches before unlinking; the record store counts before it writes);
// HTTP services can only be judged by what they report after the fact.
type Guard struct {
	// MaxRemoved is the most rows, keys or documents erasing one subject may remove from the
	// dataset; 0 means no bound.
	MaxRemoved int64 `json:"max_removed"`
	// MaxRemovedShare is, for sweeps, the largest share (0 to 1) of a partition's rows one sweep
	// may remove; 0 means no bound. Partitions of fewer than ShareMinRows rows are not held to it
	// (a small partition, such as a canary partition, may legitimately empty).
	MaxRemovedShare float64 `json:"max_removed_share"`
	ShareMinRows    int64   `json:"share_min_rows,omitempty"`
}

// Enabled reports whether the guard bounds anything.
func (g Guard) Enabled() bool { return g.MaxRemoved > 0 || g.MaxRemovedShare > 0 }

// Check returns a permanent *GuardError when removing count things (unit: rows, keys,
// documents...) of one subject from dataset exceeds MaxRemoved, and nil otherwise.
func (g Guard) Check(dataset, unit string, count int64) error {
	if g.MaxRemoved <= 0 || count <= g.MaxRemoved {
		return nil
	}
	return Permanent(&GuardError{Dataset: dataset, Unit: unit, Count: count, Limit: g.MaxRemoved})
}

// CheckShare returns a permanent *GuardError when a sweep removing removed of a partition's
// rows exceeds MaxRemovedShare (for partitions of at least ShareMinRows rows), and nil
// otherwise. partition names the partition in the message ("partition 2024/01.jsonl",
// "table events").
func (g Guard) CheckShare(dataset, partition string, removed, rows int64) error {
	if g.MaxRemovedShare <= 0 || g.MaxRemovedShare >= 1 || rows <= 0 || rows < g.ShareMinRows {
		return nil
	}
	if float64(removed) <= g.MaxRemovedShare*float64(rows) {
		return nil
	}
	return Permanent(&GuardError{Dataset: dataset, Unit: "rows", Count: removed, Rows: rows, Partition: partition, MaxShare: g.MaxRemovedShare})
}

// GuardError says that an erasure stopped at its dataset's guard, having committed nothing
// (except for HTTP services, which report what they removed after the fact: Reported).
//
// It holds counts, names of datasets and partitions and task ids, never a subject's
// identifier, so it may be stored and shown as it is (JSON: a failed unit of a shared sweep
// keeps it, see SweepUnit).
type GuardError struct {
	Dataset string `json:"dataset"`
	// Unit is what was counted: rows, keys, documents.
	Unit string `json:"unit"`
	// Count is what the erasure would have removed; Limit the dataset's max_removed.
	Count int64 `json:"count"`
	Limit int64 `json:"limit,omitempty"`
	// Partition, Rows and MaxShare are set for a sweep stopped by max_removed_share: the
	// partition ("partition 2024/01.jsonl", "table events"), its rows, and the share allowed.
	Partition string  `json:"partition,omitempty"`
	Rows      int64   `json:"rows,omitempty"`
	MaxShare  float64 `json:"max_share,omitempty"`
	// Reported is set when the count is the service's own report of what it already erased.
	Reported bool `json:"reported,omitempty"`
	// Tasks are, for a sweep, the tasks whose subjects exceed max_removed (their erasure
	// fails; the sweep's other tasks wait for the next sweep).
	Tasks []int64 `json:"tasks,omitempty"`
}

func (e *GuardError) Error() string {
	var b strings.Builder
	switch {
	case e.Partition != "":
		fmt.Fprintf(&b, "guard: the sweep would remove %d of the %d rows of %s of %s (%.0f%%), more than max_removed_share %g; nothing was changed",
			e.Count, e.Rows, e.Partition, e.Dataset, 100*float64(e.Count)/float64(e.Rows), e.MaxShare)
	case e.Reported:
		fmt.Fprintf(&b, "guard: %s reports %d %s removed for one subject, more than max_removed %d; the service has already erased them: check its key", e.Dataset, e.Count, e.Unit, e.Limit)
	case len(e.Tasks) == 1:
		fmt.Fprintf(&b, "guard: erasing the subject of task %d would remove %d %s of %s, more than max_removed %d; nothing was removed",
			e.Tasks[0], e.Count, e.Unit, e.Dataset, e.Limit)
	case len(e.Tasks) > 1:
		fmt.Fprintf(&b, "guard: erasing the subjects of tasks %s would remove up to %d %s each of %s, more than max_removed %d; nothing was removed",
			joinIDs(e.Tasks), e.Count, e.Unit, e.Dataset, e.Limit)
	default:
		fmt.Fprintf(&b, "guard: erasing this subject would remove %d %s of %s, more than max_removed %d; nothing was removed", e.Count, e.Unit, e.Dataset, e.Limit)
	}
	if e.Partition == "" {
		b.WriteString(" (check the dataset's key; `erasure retry REQUEST --force` overrides the guard for this task)")
	}
	return b.String()
}

func joinIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ", ")
}

// AsGuardError returns the *GuardError in err's chain, if any.
func AsGuardError(err error) (*GuardError, bool) {
	var g *GuardError
	ok := errors.As(err, &g)
	return g, ok
}

type guardKey struct{}

// ContextWithGuard returns a context carrying the guard an erasure must respect. The executor
// sets the dataset's guard for every task the operator has not forced (GuardOverridden); a
// connector reads it with GuardFrom.
func ContextWithGuard(ctx context.Context, g Guard) context.Context {
	return context.WithValue(ctx, guardKey{}, g)
}

// GuardFrom returns the guard ctx carries; the zero Guard (no bound) when it carries none.
func GuardFrom(ctx context.Context) Guard {
	g, _ := ctx.Value(guardKey{}).(Guard)
	return g
}

// GuardStatus is what the blast-radius guard did to a task.
type GuardStatus string

const (
	// GuardNone: the task runs under its dataset's guard.
	GuardNone GuardStatus = ""
	// GuardTripped: the task's last attempt stopped at the guard (the task failed).
	GuardTripped GuardStatus = "tripped"
	// GuardOverridden: an operator retried the task with --force; it runs without the
	// per-subject bound (max_removed) from then on.
	GuardOverridden GuardStatus = "overridden"
)

// Valid reports whether s is a known guard status.
func (s GuardStatus) Valid() bool { return s == GuardNone || s == GuardTripped || s == GuardOverridden }

// RetryOptions are an operator's choices when retrying a request.
type RetryOptions struct {
	// OverrideGuard lifts max_removed for the tasks that failed at their guard (GuardTripped):
	// they run again without it. ECONFLICT when no failed task tripped its guard.
	OverrideGuard bool `json:"force,omitempty"`
}
