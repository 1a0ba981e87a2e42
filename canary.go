package erasure

import (
	"context"
	"crypto/rand"
	"math/big"
	"strings"
	"time"
)

// An erasure pipeline decays silently: a service's delete endpoint starts answering 204
// without deleting, a table moves, a key pattern stops matching what the application writes.
// A canary catches it the only way that cannot be fooled by the pipeline's own view: on a
// schedule, it plants a synthetic subject in the dataset the way the dataset's owners write
// real data (Planter), submits the subject's erasure through the normal pipeline as a canary
// request (kept out of user statistics), and then checks that what it planted is really gone
// (Planter.Remains, an independent read, and the dataset's own Verifier). Async datasets,
// where erasure cannot write, get a command marked canary that the owner's service must
// handle like any other: the canary passes when it is acknowledged done in time.

// Canary is a dataset's canary declaration (the registry's `canary:` block, less the
// connector-specific plant, which the connector keeps).
type Canary struct {
	// Every is how often the canary runs.
	Every time.Duration `json:"every"`
	// Timeout bounds the wait for the canary's erasure to end (sweeps and acknowledgements
	// included).
	Timeout time.Duration `json:"timeout"`
	// Subject maps identifier types to templates of the canary subject's values, in which
	// {random} stands for CanaryRandomDigits random decimal digits ("9{random}" for an integer
	// key). Types of the dataset's keys left out get DefaultCanaryValue.
	Subject map[string]string `json:"subject,omitempty"`
}

// DefaultCanaryValue is the template of a canary subject's values when the registry sets none.
const DefaultCanaryValue = "erasure-canary-{random}"

// CanaryRandomDigits is how many decimal digits {random} stands for in a canary value: with a
// leading digit of the template's, still an int64.
const CanaryRandomDigits = 15

// NewCanarySubject returns a fresh synthetic subject for the canary of d: one value of each of
// the dataset's key types, from c.Subject's templates or DefaultCanaryValue, each with its own
// random digits. EINVALID when a template gives an invalid identifier.
func NewCanarySubject(d *Dataset) (Subject, error) {
	var ids []Identifier
	for _, typ := range d.Keys {
		tmpl := DefaultCanaryValue
		if d.Canary != nil && d.Canary.Subject[typ] != "" {
			tmpl = d.Canary.Subject[typ]
		}
		for strings.Contains(tmpl, "{random}") {
			tmpl = strings.Replace(tmpl, "{random}", randomDigits(CanaryRandomDigits), 1)
		}
		id := Identifier{Type: typ, Value: tmpl}
		if err := id.Validate(); err != nil {
			return nil, Errorf(EINVALID, "dataset %s: canary subject %s: %s", d.Name, typ, ErrorMessage(err))
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, Errorf(EINVALID, "dataset %s has no key identifier to make a canary subject of", d.Name)
	}
	return NewSubject(ids...), nil
}

func randomDigits(n int) string {
	b := make([]byte, n)
	for i := range b {
		d, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			panic(err)
		}
		b[i] = byte('0' + d.Int64())
	}
	return string(b)
}

// Planter is a connector that can plant a canary: write a synthetic subject's data into its
// dataset the way the dataset's owners do (an INSERT from a template, a SET of the dataset's
// keys, a call to a create endpoint, a row appended to a canary partition, a record write),
// and read back, independently of its own erasure and verification, whether what it planted
// is still there. Errors are classified as for Eraser.
type Planter interface {
	// Plant writes the canary subject s.
	Plant(ctx context.Context, s Subject) error
	// Remains reports whether anything Plant wrote for s is still there, read the way the
	// owners read it (not through the dataset's erase or verify templates, which the canary
	// is checking).
	Remains(ctx context.Context, s Subject) (bool, error)
}

// CanaryStage is where a canary failed.
type CanaryStage string

const (
	CanaryPlant  CanaryStage = "plant"  // the synthetic subject could not be planted
	CanaryErase  CanaryStage = "erase"  // its erasure failed or did not end in time
	CanaryCheck  CanaryStage = "check"  // its erasure completed but the subject is still there
	CanaryRecord CanaryStage = "record" // the result could not be read or written
)

// CanaryResult is the outcome of one canary run of a dataset.
type CanaryResult struct {
	Dataset string `json:"dataset"`
	// RequestID is the canary's erasure request, once submitted.
	RequestID string    `json:"request_id,omitempty"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	OK        bool      `json:"ok"`
	// Stage and Reason say where and why a failed canary failed, for people; Reason never
	// holds an identifier value.
	Stage  CanaryStage `json:"stage,omitempty"`
	Reason string      `json:"reason,omitempty"`
	Actor  string      `json:"actor,omitempty"`
}

// Audit event types of canaries. canary.failed is what alerting (webhooks) subscribes to.
const (
	EventCanaryPassed = "canary.passed"
	EventCanaryFailed = "canary.failed"
)

// CanaryStore keeps canary results.
type CanaryStore interface {
	// RecordCanary stores the result of one canary run with its audit event (canary.passed or
	// canary.failed), in one transaction.
	RecordCanary(ctx context.Context, r CanaryResult) error
	// LastCanaries returns the latest result of every dataset that ran a canary, by dataset
	// name.
	LastCanaries(ctx context.Context) ([]CanaryResult, error)
}

// CanaryService runs canaries on demand and reports their last results; the API's canary
// routes act on it. Implementation: pipeline.Canaries.
type CanaryService interface {
	// RunCanaries runs the canary of dataset now (every dataset with a canary when dataset is
	// ""), to its end, and returns the results. ENOTFOUND for an unknown dataset, EINVALID for
	// one without a canary.
	RunCanaries(ctx context.Context, dataset, actor string) ([]CanaryResult, error)
	// Canaries returns the last result of every dataset with a canary (a dataset whose canary
	// never ran has a result with a zero Started).
	Canaries(ctx context.Context) ([]CanaryResult, error)
}
