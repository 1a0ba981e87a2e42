package erasure

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Policies around erasure: legal holds that keep datasets' tasks waiting, a grace window the
// subject may withdraw in, a suppression list of erased subjects, retention of datasets' old
// rows, and replay of erasures onto a dataset restored from a backup. The rules that change
// tasks (held, scheduled, what a completed request leaves behind) are in machine.go; this file
// holds the types and the interfaces the stores, connectors and services implement.

// Hold is a legal hold: while it is in force, the erase tasks of the datasets it names, for
// every request whose subject has its identifier (submitted or found by a lookup), wait in
// state held. It never stops anything else: lookups, the other datasets, the audit trail and
// the deadline alarm go on. The identifier is kept only as its keyed hash.
type Hold struct {
	ID string `json:"id"`
	// Identifier is the keyed hash of the identifier held ("type:hex", see Hasher.Identifier).
	Identifier string `json:"identifier"`
	// All is set when the hold covers every dataset; otherwise Datasets lists those it covers.
	All      bool     `json:"all_datasets"`
	Datasets []string `json:"datasets,omitempty"`
	// Reason says why, for operators (a case reference; never an identifier).
	Reason     string     `json:"reason"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ReleasedBy string     `json:"released_by,omitempty"`
	ReleasedAt *time.Time `json:"released_at,omitempty"`
}

// Active reports whether the hold is in force (not released).
func (h *Hold) Active() bool { return h.ReleasedAt == nil }

// Covers reports whether the hold covers dataset.
func (h *Hold) Covers(dataset string) bool { return h.All || slices.Contains(h.Datasets, dataset) }

// MaxHoldReason is the longest reason of a hold, in bytes.
const MaxHoldReason = 500

// HoldSpec is a hold as an operator asks for it: an identifier in clear (hashed before it is
// stored), the datasets (none with All) and a reason.
type HoldSpec struct {
	Identifier Identifier
	All        bool
	Datasets   []string
	Reason     string
}

// Validate returns EINVALID for a bad identifier, no dataset and no All (or both), or a reason
// that is empty, too long or not printable. It does not check that the datasets exist.
func (s HoldSpec) Validate() error {
	if err := s.Identifier.Validate(); err != nil {
		return err
	}
	switch {
	case s.All && len(s.Datasets) > 0:
		return Errorf(EINVALID, `datasets must be a list of dataset names or "all", not both`)
	case !s.All && len(s.Datasets) == 0:
		return Errorf(EINVALID, `datasets is required: a list of dataset names, or "all"`)
	}
	return validReason(s.Reason, MaxHoldReason)
}

// validReason checks an operator's free-text reason: 1 to max bytes of printable UTF-8.
func validReason(reason string, max int) error {
	switch {
	case strings.TrimSpace(reason) == "":
		return Errorf(EINVALID, "reason is required: say why (a case or ticket reference)")
	case len(reason) > max:
		return Errorf(EINVALID, "reason is longer than %d bytes", max)
	}
	for _, c := range reason {
		if c < 0x20 || c == 0x7f || c == '\uFFFD' {
			return Errorf(EINVALID, "reason must be printable text on one line")
		}
	}
	return nil
}

// HoldFilter selects holds for a listing: only those in force unless All.
type HoldFilter struct {
	All bool
}

// HoldsOf returns the ids of the holds in force among holds that cover dataset and whose
// identifier is one of hashes: the holds a task of dataset waits on.
func HoldsOf(hashes []string, holds []Hold, dataset string) []string {
	var out []string
	for i := range holds {
		h := &holds[i]
		if h.Active() && h.Covers(dataset) && slices.Contains(hashes, h.Identifier) {
			out = append(out, h.ID)
		}
	}
	return out
}

// ExplainHeld fills in, on a request read from a store, which holds each held task waits on
// (Task.HeldBy) and, when the request is overdue because of them, OverdueReason: a held
// request stays open and is overdue once past its deadline like any other; the reason says
// that legal holds are why. holds are the holds in force.
func ExplainHeld(r *Request, holds []Hold) {
	var held int
	seen := map[string]bool{}
	var reasons []string
	for i := range r.Tasks {
		t := &r.Tasks[i]
		if t.State != TaskHeld {
			continue
		}
		held++
		t.HeldBy = HoldsOf(r.SubjectHashes, holds, t.Dataset)
		for _, id := range t.HeldBy {
			if seen[id] {
				continue
			}
			seen[id] = true
			for j := range holds {
				if holds[j].ID == id {
					reasons = append(reasons, fmt.Sprintf("%s (%s)", id, truncateValid(holds[j].Reason, 80)))
				}
			}
		}
	}
	if !r.Overdue || held == 0 {
		return
	}
	r.OverdueReason = fmt.Sprintf("%d task(s) wait on legal hold %s", held, strings.Join(reasons, ", "))
}

// HoldService manages legal holds (pipeline.Policies implements it). Errors: EINVALID for a
// bad spec, an undeclared identifier type or an unknown dataset; ENOTFOUND for an unknown
// hold; ECONFLICT to release a hold already released.
type HoldService interface {
	AddHold(ctx context.Context, s HoldSpec, actor string) (*Hold, error)
	Holds(ctx context.Context, f HoldFilter) ([]Hold, error)
	Hold(ctx context.Context, id string) (*Hold, error)
	ReleaseHold(ctx context.Context, id, actor string) (*Hold, error)
}

// HoldStore keeps holds. Adding or releasing one applies it, in the same transaction, to every
// open request whose subject has its identifier (Machine.Settle decides which tasks change).
type HoldStore interface {
	// AddHold stores h (its ID and Identifier set) with an audit event and holds the tasks it
	// covers; ECONFLICT when the id is taken.
	AddHold(ctx context.Context, h Hold, actor string) (*Hold, error)
	// ReleaseHold releases hold id with an audit event and lets the tasks it held run unless
	// another hold covers them; ENOTFOUND, ECONFLICT when already released.
	ReleaseHold(ctx context.Context, id, actor string) (*Hold, error)
	// Holds lists holds, newest first: those in force, or all with f.All.
	Holds(ctx context.Context, f HoldFilter) ([]Hold, error)
	// Hold returns one hold; ENOTFOUND.
	Hold(ctx context.Context, id string) (*Hold, error)
	// OverdueHeld counts the open requests past their deadline that have held tasks.
	OverdueHeld(ctx context.Context) (int, error)
}

// GraceStore ends grace windows: EndGraceWindows applies Machine.EndGrace to up to limit
// requests whose window has ended (scheduled tasks due), each in its own transaction with its
// audit events, and returns how many it ended.
type GraceStore interface {
	EndGraceWindows(ctx context.Context, limit int) (int, error)
	// WithdrawRequest applies Machine.Withdraw: ENOTFOUND, EFORBIDDEN for another actor than
	// the submitter, ECONFLICT once the grace window has ended.
	WithdrawRequest(ctx context.Context, id, actor string) (*Request, error)
}

// Completion says what a completed request leaves behind, from the registry: which identifier
// types join the suppression list, and which datasets keep their identifiers in the replay
// escrow and for how long. Stores give it to the Machines they build (Machine.SetCompletion).
type Completion struct {
	// SuppressTypes are the identifier types suppressed; nil means every type. Suppression is
	// off when Suppress is false.
	Suppress      bool
	SuppressTypes []string
	// Escrow is, per dataset, how long its erased identifiers stay in the replay escrow.
	Escrow map[string]time.Duration
}

// Suppresses reports whether identifiers of type typ join the suppression list.
func (c Completion) Suppresses(typ string) bool {
	return c.Suppress && (c.SuppressTypes == nil || slices.Contains(c.SuppressTypes, typ))
}

// EscrowSeal asks a store to keep, encrypted, the identifiers of Types of a completed request
// for the replay of Dataset, under the dataset's key of the completion month, destroyed Period
// after that month ends.
type EscrowSeal struct {
	Dataset string
	Types   []string
	Period  time.Duration
}

// EscrowMonth returns the month a completion at t is escrowed under ("2026-03") and when that
// month's key is destroyed: period after the month ends.
func EscrowMonth(t time.Time, period time.Duration) (string, time.Time) {
	t = t.UTC()
	start := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	return start.Format("2006-01"), start.AddDate(0, 1, 0).Add(period)
}

// EscrowCipher encrypts escrowed identifiers (audit.Escrow implements it): AES-GCM under a
// data key per dataset and month, itself stored wrapped under a master key that is not in the
// store. Destroying a data key (deleting its wrapped form) makes what it sealed unreadable
// for good: crypto-erasure.
type EscrowCipher interface {
	// NewKey returns a fresh random data key, wrapped for storing.
	NewKey() ([]byte, error)
	// Seal encrypts plaintext under the wrapped data key, bound to aad.
	Seal(wrapped, plaintext, aad []byte) ([]byte, error)
	// Open decrypts what Seal sealed with the same wrapped key and aad.
	Open(wrapped, sealed, aad []byte) ([]byte, error)
}

// Escrowed is one completed request's identifiers recovered from the escrow of a dataset.
type Escrowed struct {
	RequestID   string
	Subject     Subject
	CompletedAt time.Time
}

// EscrowStore reads and destroys the replay escrow.
type EscrowStore interface {
	// OpenEscrow returns the escrowed subjects of dataset whose requests completed at or after
	// since, decrypted, and how many could not be because their month's key was destroyed.
	OpenEscrow(ctx context.Context, dataset string, since time.Time) (subjects []Escrowed, destroyed int, err error)
	// DestroyEscrowKeys destroys every data key whose escrow period has ended, with what it
	// sealed, each with an audit event, and returns how many keys it destroyed.
	DestroyEscrowKeys(ctx context.Context) (int, error)
}

// SuppressionStore keeps the suppression list: the keyed hashes (under the suppression key,
// see Completion) of completed requests' identifiers.
type SuppressionStore interface {
	// Suppressed reports, for each hash, whether it is on the list.
	Suppressed(ctx context.Context, hashes []string) ([]bool, error)
	// Suppressions calls fn with every hash on the list (of type typ when set), in order.
	Suppressions(ctx context.Context, typ string, fn func(hash string) error) error
	// Unsuppress takes hashes off the list with an audit event (naming the identifiers by
	// their audit hashes, in the same order) and reports which were on it.
	Unsuppress(ctx context.Context, hashes, auditHashes []string, reason, actor string) ([]bool, error)
}

// MaxSuppressionCheck is how many identifiers one suppression check or unsuppress may carry.
const MaxSuppressionCheck = 1000

// SuppressionService answers and manages the suppression list (pipeline.Policies). Errors:
// EINVALID for an undeclared identifier type or a bad value, ETOOLARGE for more than
// MaxSuppressionCheck identifiers.
type SuppressionService interface {
	// CheckSuppressed reports, for each identifier, whether it is suppressed.
	CheckSuppressed(ctx context.Context, ids []Identifier) ([]bool, error)
	// ExportSuppressions calls fn with every suppression hash (of type typ when set).
	ExportSuppressions(ctx context.Context, typ string, fn func(hash string) error) error
	// Unsuppress takes identifiers off the list (an audited operator action) and reports which
	// were on it. EINVALID without a reason.
	Unsuppress(ctx context.Context, ids []Identifier, reason, actor string) ([]bool, error)
}

// Retention is a dataset's retention policy: rows older than OlderThan, by the timestamp in
// Column (a SQL column, a files field; none for records, whose tombstones carry their
// deletion time), are removed every Every.
type Retention struct {
	OlderThan time.Duration `json:"older_than"`
	Column    string        `json:"column,omitempty"`
	// Format says how Column holds time when the connector cannot tell: auto (the column's type
	// says; numbers are Unix seconds), unix, unix_ms or rfc3339.
	Format string        `json:"format,omitempty"`
	Every  time.Duration `json:"every"`
}

// Retention formats.
var RetentionFormats = []string{"auto", "unix", "unix_ms", "rfc3339"}

// Retainer is implemented by connectors that can apply a retention policy. Expire counts the
// rows older than cutoff, then calls approve with that count: when approve returns an error (a
// dry run, a guard refusing so many rows) nothing is removed and the error is returned with
// the count; otherwise it removes them (in batches, by the dataset's own engine where there is
// one) and returns how many it removed. It must be safe to run again after a failure.
type Retainer interface {
	Expire(ctx context.Context, cutoff time.Time, approve func(expired int64) error) (RetentionResult, error)
}

// RetentionResult is what one retention run found and did.
type RetentionResult struct {
	Expired int64 `json:"expired"`
	Removed int64 `json:"removed"`
}

// RetentionState is where a retention run stands.
type RetentionState string

const (
	RetentionRunning RetentionState = "running"
	RetentionDone    RetentionState = "done"
	RetentionFailed  RetentionState = "failed"
)

// RetentionRun is one run of a dataset's retention, stored and audited with its counts.
type RetentionRun struct {
	ID       string         `json:"id"`
	Dataset  string         `json:"dataset"`
	Cutoff   time.Time      `json:"cutoff"`
	DryRun   bool           `json:"dry_run"`
	State    RetentionState `json:"state"`
	Actor    string         `json:"actor"`
	Started  time.Time      `json:"started"`
	Finished *time.Time     `json:"finished,omitempty"`
	Error    string         `json:"error,omitempty"`
	RetentionResult
}

// ErrDryRun is what a dry run's approve returns: nothing is removed.
var ErrDryRun = &Error{Code: ECONFLICT, Message: "dry run: nothing removed"}

// RetentionStore keeps retention runs.
type RetentionStore interface {
	// StartRetention stores a running run; ECONFLICT while another run of the dataset is
	// running and started after staleBefore (an older one was left by a process that died and
	// is taken over).
	StartRetention(ctx context.Context, run RetentionRun, staleBefore time.Time) error
	// FinishRetention ends run id with res (failed with runErr's message when runErr is set)
	// and its retention.run audit event; ENOTFOUND, ECONFLICT when it already ended.
	FinishRetention(ctx context.Context, id string, res RetentionResult, runErr error) (*RetentionRun, error)
	// RetentionRuns lists a dataset's runs, newest first (all datasets when dataset is "").
	RetentionRuns(ctx context.Context, dataset string, limit int) ([]RetentionRun, error)
}

// RetentionService runs retention (pipeline.Policies). Errors: ENOTFOUND for an unknown
// dataset, EINVALID for one without a retention policy, ECONFLICT while a run is running, and
// the guard's refusal.
type RetentionService interface {
	RunRetention(ctx context.Context, dataset string, dryRun bool, actor string) (*RetentionRun, error)
	RetentionRuns(ctx context.Context, dataset string, limit int) ([]RetentionRun, error)
}

// Replayer is implemented by connectors that can re-apply erasures to a dataset restored from
// a backup without any identifier in clear: Replay reads every distinct value of the dataset's
// key (in batches), asks match whether it belongs to an erased subject (the caller compares
// its keyed hash with those of the completed requests), and removes the rows of the values
// that match (counting them only when dryRun). It reports progress as it goes. Values are
// handed to match as stored and are not kept.
type Replayer interface {
	Replay(ctx context.Context, match func(value string) bool, dryRun bool, progress func(ReplayProgress)) (ReplayResult, error)
}

// ReplayResult is what a replay found and did: key values (or rows) scanned, values that
// matched an erased subject, rows removed.
type ReplayResult struct {
	Scanned int64 `json:"scanned"`
	Matched int64 `json:"matched"`
	Removed int64 `json:"removed"`
}

// ReplayProgress is a running replay's progress: Total is what will be scanned, when known.
type ReplayProgress struct {
	ReplayResult
	Total int64 `json:"total"`
}

// ReplayState is where a replay stands.
type ReplayState string

const (
	ReplayRunning ReplayState = "running"
	ReplayDone    ReplayState = "done"
	ReplayFailed  ReplayState = "failed"
)

// Replay is one replay of erasures onto a restored dataset. Subjects is how many erased
// subjects it re-applies; for an escrow dataset, Submitted is how many erasure requests it
// submitted again and Destroyed how many subjects' identifiers were crypto-erased already.
type Replay struct {
	ID        string          `json:"id"`
	Dataset   string          `json:"dataset"`
	Since     time.Time       `json:"since"`
	DryRun    bool            `json:"dry_run"`
	Method    string          `json:"method"` // scan or escrow
	State     ReplayState     `json:"state"`
	Actor     string          `json:"actor"`
	Started   time.Time       `json:"started"`
	Finished  *time.Time      `json:"finished,omitempty"`
	Error     string          `json:"error,omitempty"`
	Subjects  int             `json:"subjects"`
	Submitted int             `json:"submitted,omitempty"`
	Destroyed int             `json:"destroyed,omitempty"`
	Progress  *ReplayProgress `json:"progress,omitempty"`
	ReplayResult
}

// ReplayService replays erasures onto restored datasets (pipeline.Policies). Errors:
// ENOTFOUND for an unknown dataset or replay, EINVALID for a dataset that can be replayed
// neither by scanning nor from an escrow, ECONFLICT while a replay of it runs.
type ReplayService interface {
	// StartReplay starts a replay of the erasures completed since since and returns it
	// running; it goes on in the background.
	StartReplay(ctx context.Context, dataset string, since time.Time, dryRun bool, actor string) (*Replay, error)
	// Replays returns the replays of dataset this process ran, newest first.
	Replays(ctx context.Context, dataset string) ([]Replay, error)
}

// ErasedStore reads the keyed hashes of the identifiers of completed requests, which a replay
// compares a dataset's key values with.
type ErasedStore interface {
	// ErasedSince returns the keyed hashes of the identifiers of types of every request
	// completed at or after since, each once, and how many requests those are.
	ErasedSince(ctx context.Context, since time.Time, types []string) (hashes []string, requests int, err error)
	// RecordReplay appends the replay.run audit event of a replay that ended, with its counts.
	RecordReplay(ctx context.Context, r Replay) error
}

// Hider is implemented by connectors that can hide a subject's data at once, without erasing
// it (an HTTP call, a SQL update): during a request's grace window the hide task runs, the
// erasure waits for the window to end. Hides reports whether the dataset declares a hide
// action; Hide must be idempotent and is classified like Erase.
type Hider interface {
	Hides() bool
	Hide(ctx context.Context, s Subject) (Outcome, error)
}

// Withdrawer lets the channel that submitted a request cancel it while it waits in its grace
// window (pipeline.Service): EFORBIDDEN for another actor, ECONFLICT once the window ended.
type Withdrawer interface {
	Withdraw(ctx context.Context, id, actor string) (*Request, error)
}

var holdIDRE = regexp.MustCompile(`^h_[0-9a-z]{26}$`)

// ValidHoldID reports whether s has the shape of a hold id.
func ValidHoldID(s string) bool { return holdIDRE.MatchString(s) }
