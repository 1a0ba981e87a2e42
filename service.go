package erasure

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Limits of a submission.
const (
	// MaxSubjectIdentifiers is the largest number of identifiers one submission may carry.
	MaxSubjectIdentifiers = 64
	// MaxIdempotencyKey is the longest idempotency key accepted, in bytes.
	MaxIdempotencyKey = 255
	// MaxBatchSubmissions is the most submissions one batch may carry (Service.SubmitBatch).
	MaxBatchSubmissions = 10000
)

// SubmitResult is the outcome of one submission of a batch: the request (created, or the one
// its idempotency key already named, then only its ID and status may be known), whether it
// was created, or the error that concerns this submission alone (as Submit would return it).
type SubmitResult struct {
	Request *Request
	Created bool
	Err     error
}

// reasonRE is what a reason may look like: a short label such as "user_request" or
// "gdpr art-17", never free text (it is stored in clear and shown in listings).
var reasonRE = regexp.MustCompile(`^[a-z0-9_-][a-z0-9_ -]{0,63}$`)

// Submission is an erasure request as submitted through the API, the CLI or the Go client.
type Submission struct {
	// ID, when set, is the id the request takes: for a protocol that must name the request
	// before it exists (DRP records its request first). The Service checks its shape, and an
	// idempotency key that already names another request is a conflict. Empty: a new id.
	ID      string
	Subject Subject
	Reason  string
	// Deadline is when the erasure must be done; zero means now + the registry's default.
	Deadline       time.Time
	IdempotencyKey string
	Actor          string
	// Grace is the request's grace window: its erase tasks wait that long, and the subject's
	// channel may withdraw it meanwhile. nil means the registry's default (defaults.grace);
	// zero means none.
	Grace *time.Duration
	// NoSuppress keeps the subject's identifiers off the suppression list once erased.
	NoSuppress bool
}

// MaxGrace bounds a submission's grace window.
const MaxGrace = 90 * 24 * time.Hour

// Validate checks what a submission says by itself, whatever the registry: a subject of 1 to
// MaxSubjectIdentifiers well-formed identifiers, a reason that is a short label, an idempotency
// key of printable characters. It returns EINVALID with a message that never holds an
// identifier value. The Service checks the rest (declared types, deadline bounds).
func (s Submission) Validate() error {
	if len(s.Subject) == 0 {
		return Errorf(EINVALID, `subject is required: an object such as {"user_id":"42"}`)
	}
	if len(s.Subject) > MaxSubjectIdentifiers {
		return Errorf(EINVALID, "subject has more than %d identifiers", MaxSubjectIdentifiers)
	}
	for _, id := range s.Subject {
		if err := id.Validate(); err != nil {
			return err
		}
	}
	switch {
	case s.Reason == "":
		return Errorf(EINVALID, `reason is required, such as "user_request"`)
	case !reasonRE.MatchString(s.Reason) || strings.TrimSpace(s.Reason) != s.Reason:
		return Errorf(EINVALID, "reason must be 1 to 64 characters of a-z, 0-9, _, - and inner spaces")
	case len(s.IdempotencyKey) > MaxIdempotencyKey:
		return Errorf(EINVALID, "idempotency key is longer than %d bytes", MaxIdempotencyKey)
	case s.Grace != nil && (*s.Grace < 0 || *s.Grace > MaxGrace):
		return Errorf(EINVALID, "grace must be between 0 and %s", MaxGrace)
	}
	for _, c := range s.IdempotencyKey {
		if !unicode.IsPrint(c) || c == unicode.ReplacementChar {
			return Errorf(EINVALID, "idempotency key must be printable UTF-8")
		}
	}
	return nil
}

// Canonical returns an encoding of what a submission asks for: its subject (sorted, without
// duplicates), reason and deadline. Two submissions that ask for the same erasure encode
// alike whatever their order of identifiers. It holds identifiers in clear: it is only ever
// stored as a keyed hash (the request's fingerprint, see Hasher.Sum).
func (s Submission) Canonical() []byte {
	var b strings.Builder
	field := func(v string) { fmt.Fprintf(&b, "%d:%s;", len(v), v) }
	subject := NewSubject(s.Subject...)
	field("submission/1")
	field(strconv.Itoa(len(subject)))
	for _, id := range subject {
		field(id.Type)
		field(id.Value)
	}
	field(s.Reason)
	if !s.Deadline.IsZero() {
		field(s.Deadline.UTC().Format(time.RFC3339Nano))
	} else {
		field("")
	}
	// Fields added later are written only when set, so that earlier fingerprints stay valid.
	if s.Grace != nil {
		field("grace=" + s.Grace.String())
	}
	if s.NoSuppress {
		field("no_suppress")
	}
	return []byte(b.String())
}

// DatasetInfo is a dataset as the API shows it: its declaration and its health.
type DatasetInfo struct {
	Name      string        `json:"name"`
	Owner     string        `json:"owner"`
	Connector string        `json:"connector"`
	Method    Method        `json:"method"`
	Keys      []string      `json:"keys"`
	Provides  []Provide     `json:"provides,omitempty"`
	After     []string      `json:"after,omitempty"`
	Policy    Policy        `json:"policy"`
	Retention *Retention    `json:"retention,omitempty"`
	Escrow    time.Duration `json:"escrow,omitempty"`
	Health    DatasetStats  `json:"health"`
	// LastSweep is the most recent sweep of an offline dataset.
	LastSweep *Sweep `json:"last_sweep,omitempty"`
	// Canary is the last canary run of a dataset with a canary (Started zero before the first).
	Canary *CanaryResult `json:"canary,omitempty"`
}

// AuditReport is the outcome of verifying the audit trail: the head verified (the whole trail
// when OK) and, when it is broken, where.
type AuditReport struct {
	OK    bool      `json:"ok"`
	Head  AuditHead `json:"head"`
	Error string    `json:"error,omitempty"`
	// Anchors counts the points (expected heads, checkpoints given and kept) the chain was
	// checked to pass through.
	Anchors int `json:"anchors,omitempty"`
	// PublicKey is the hex Ed25519 key the deployment signs its checkpoints with.
	PublicKey string `json:"public_key,omitempty"`
}

// Service is what the API and the CLI act on: the planner and pipeline in front of a store.
// Methods return *Error values with the codes listed on each.
type Service interface {
	// Submit validates and plans a submission and stores it: EINVALID for an unknown or bad
	// identifier or reason; ECONFLICT for a reused idempotency key with other content.
	Submit(ctx context.Context, s Submission) (req *Request, created bool, err error)
	// SubmitBatch submits up to MaxBatchSubmissions submissions, each with its own
	// idempotency key, stored in one transaction, and returns a result per submission, in
	// order: each as Submit would answer it (a bad submission gets its own EINVALID and
	// changes nothing; the others are stored). The error is for the batch as a whole:
	// EINVALID for an empty batch or one too large, ECONFLICT when no dataset is registered,
	// EUNAVAILABLE when the store is.
	SubmitBatch(ctx context.Context, subs []Submission) ([]SubmitResult, error)
	// Request returns a request with its tasks; ENOTFOUND.
	Request(ctx context.Context, id string) (*Request, error)
	// Requests lists requests; EINVALID for a bad filter or cursor.
	Requests(ctx context.Context, f RequestFilter) (RequestPage, error)
	// Cancel stops a request's unfinished tasks; ENOTFOUND, ECONFLICT when it already ended.
	Cancel(ctx context.Context, id, actor string) (*Request, error)
	// Retry re-opens a request's failed tasks, with o.OverrideGuard lifting the guard of those
	// that failed at it; ENOTFOUND, ECONFLICT when none failed (or none failed at its guard).
	Retry(ctx context.Context, id, actor string, o RetryOptions) (*Request, error)
	// Task returns one task; ENOTFOUND.
	Task(ctx context.Context, id int64) (*Task, error)
	// Ack applies an async dataset's acknowledgement; EINVALID for a bad status, ENOTFOUND for
	// an unknown task or one of another dataset, ECONFLICT for a cancelled task.
	Ack(ctx context.Context, dataset string, a Ack, actor string) (*Task, error)
	// Datasets returns every registered dataset with its health.
	Datasets(ctx context.Context) ([]DatasetInfo, error)
	// Dataset returns one dataset; ENOTFOUND.
	Dataset(ctx context.Context, name string) (*DatasetInfo, error)
	// Audit returns audit events.
	Audit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
	// VerifyAudit verifies the whole audit trail with the deployment's key. A broken trail is
	// a report with OK false, not an error; errors are for a store that cannot be read.
	VerifyAudit(ctx context.Context) (*AuditReport, error)
	// Ready returns nil when the service can accept requests (store reachable).
	Ready(ctx context.Context) error
}
