package erasure

import (
	"context"
	"time"
)

// Submission is an erasure request as submitted through the API, the CLI or the Go client.
type Submission struct {
	Subject Subject
	Reason  string
	// Deadline is when the erasure must be done; zero means now + the registry's default.
	Deadline       time.Time
	IdempotencyKey string
	// Fingerprint identifies the submitted content for idempotency; set by the intake.
	Fingerprint string
	Actor       string
}

// DatasetInfo is a dataset as the API shows it: its declaration and its health.
type DatasetInfo struct {
	Name      string       `json:"name"`
	Owner     string       `json:"owner"`
	Connector string       `json:"connector"`
	Method    Method       `json:"method"`
	Keys      []string     `json:"keys"`
	Provides  []Provide    `json:"provides,omitempty"`
	After     []string     `json:"after,omitempty"`
	Policy    Policy       `json:"policy"`
	Health    DatasetStats `json:"health"`
	// LastSweep is the most recent sweep of an offline dataset.
	LastSweep *Sweep `json:"last_sweep,omitempty"`
}

// Service is what the API and the CLI act on: the planner and pipeline in front of a store.
// Methods return *Error values with the codes listed on each.
type Service interface {
	// Submit validates and plans a submission and stores it: EINVALID for an unknown or bad
	// identifier or reason; ECONFLICT for a reused idempotency key with other content.
	Submit(ctx context.Context, s Submission) (req *Request, created bool, err error)
	// Request returns a request with its tasks; ENOTFOUND.
	Request(ctx context.Context, id string) (*Request, error)
	// Requests lists requests; EINVALID for a bad filter or cursor.
	Requests(ctx context.Context, f RequestFilter) (RequestPage, error)
	// Cancel stops a request's unfinished tasks; ENOTFOUND, ECONFLICT when it already ended.
	Cancel(ctx context.Context, id, actor string) (*Request, error)
	// Retry re-opens a request's failed tasks; ENOTFOUND, ECONFLICT when none failed.
	Retry(ctx context.Context, id, actor string) (*Request, error)
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
	// Ready returns nil when the service can accept requests (store reachable).
	Ready(ctx context.Context) error
}
