// Package recordsconn is the `records` connector: it erases a subject's records from the
// record store (a records.Service, store/sqlrecords in `erasure serve`).
//
//	records:
//	  source: sierra          # the record source, ^[a-z0-9][a-z0-9._-]{0,63}$
//	  mode: tombstone         # tombstone (payload kept, reversible) or purge (payload dropped)
//	  key: { identifier: record_id }   # the identifier whose values are record ids (default record_id)
//
// Both modes keep a tombstone, so the catalogue still answers 410 Gone for the id, marked as
// erased: a later write with a payload is refused (409) unless an operator forces it, which is
// audited (see records.Write.Force). Erasing a record that is already a tombstone (or purged,
// or never seen) succeeds with nothing removed, and marks the tombstone as erased. Build does no I/O: the connector asks for the server's record store (SharedStore),
// which the server provides once it is open; Bind binds one by hand.
package recordsconn

import (
	"context"
	"errors"
	"sync"

	"erasure"
	"erasure/records"
	"erasure/registry"
)

func init() { registry.Register("records", driver{}) }

// SharedStore is the server's record store, which every records connector built by the
// registry asks for: the server provides it (SharedStore.Provide(cfg.Resources, store)) once
// the store is open.
var SharedStore = registry.NewResource[records.Service]("records")

// Modes.
const (
	ModeTombstone = "tombstone"
	ModePurge     = "purge"
)

// DefaultIdentifier is the identifier type used when the block names none.
const DefaultIdentifier = "record_id"

type block struct {
	Source string `yaml:"source"`
	Mode   string `yaml:"mode"`
	Key    struct {
		Identifier string `yaml:"identifier"`
	} `yaml:"key"`
}

type driver struct{}

func (driver) Method() erasure.Method { return erasure.MethodRealtime }

// Build decodes and validates the block.
func (driver) Build(b *registry.Build) erasure.Connector {
	var cfg block
	if !b.Decode(b.Block, &cfg) {
		return nil
	}
	ok := true
	if err := records.ValidSource(cfg.Source); err != nil {
		b.Errorf(registry.Child(b.Block, "source"), "records: %s", erasure.ErrorMessage(err))
		ok = false
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeTombstone
	case ModeTombstone, ModePurge:
	default:
		b.Errorf(registry.Child(b.Block, "mode"), "records: mode must be tombstone or purge, not %q", cfg.Mode)
		ok = false
	}
	if cfg.Key.Identifier == "" {
		cfg.Key.Identifier = DefaultIdentifier
	}
	if !b.Declared(cfg.Key.Identifier) {
		b.Errorf(registry.Child(registry.Child(b.Block, "key"), "identifier"), "records: key identifier %q is not a declared identifier", cfg.Key.Identifier)
		ok = false
	}
	if !ok {
		return nil
	}
	b.Dataset.Keys = []string{cfg.Key.Identifier}
	c := &Connector{dataset: b.Dataset.Name, source: cfg.Source, mode: cfg.Mode, identifier: cfg.Key.Identifier}
	SharedStore.Use(b.Resources, c.bind)
	return c
}

// Connector erases a subject's records of one source. It implements erasure.Eraser,
// erasure.Verifier and erasure.Checker.
type Connector struct {
	dataset, source, mode, identifier string

	mu    sync.RWMutex
	store records.Service
}

var (
	_ erasure.Eraser   = (*Connector)(nil)
	_ erasure.Verifier = (*Connector)(nil)
	_ erasure.Checker  = (*Connector)(nil)
)

// Bind sets the record store on every records connector among datasets (others are left
// alone), for programs and tests that wire datasets by hand; the server provides SharedStore.
func Bind(datasets []*erasure.Dataset, s records.Service) {
	for _, d := range datasets {
		if c, ok := d.Conn.(*Connector); ok {
			c.bind(s)
		}
	}
}

func (c *Connector) bind(s records.Service) {
	c.mu.Lock()
	c.store = s
	c.mu.Unlock()
}

// Source is the record source the connector erases from; Mode is tombstone or purge.
func (c *Connector) Source() string { return c.source }

// Mode is tombstone or purge.
func (c *Connector) Mode() string { return c.mode }

func (c *Connector) bound() (records.Service, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.store == nil {
		// The server provides the store right after start: a task that runs before that is retried.
		return nil, erasure.Transientf("records connector of %s: the record store is not bound yet", c.dataset)
	}
	return c.store, nil
}

// classify turns a store error into a connector failure: an unavailable store, a write racing
// ours, or the call's context ending (a shutdown, the attempt's timeout) is transient; anything
// else needs an operator.
func classify(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return erasure.Transient(err, 0)
	}
	switch erasure.ErrorCode(err) {
	case erasure.EUNAVAILABLE, erasure.ECONFLICT:
		return erasure.Transient(err, 0)
	}
	return erasure.Permanent(err)
}

// ids returns the subject's record ids; values that cannot be record ids are skipped (they
// cannot name a stored record).
func (c *Connector) ids(s erasure.Subject) []string {
	var out []string
	for _, v := range s.Values(c.identifier) {
		if records.ValidID(v) == nil {
			out = append(out, v)
		}
	}
	return out
}

// Erase tombstones (or purges) each of the subject's records. Records already tombstoned
// (already purged, in purge mode) or never seen count as already gone.
func (c *Connector) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	st, err := c.bound()
	if err != nil {
		return erasure.Outcome{}, err
	}
	var out erasure.Outcome
	for _, id := range c.ids(s) {
		_, status, err := st.Delete(ctx, c.source, id, records.DeleteOptions{Reason: "erasure request", Purge: c.mode == ModePurge, ErasedAs: c.identifier})
		switch {
		case erasure.ErrorCode(err) == erasure.ENOTFOUND:
		case err != nil:
			return out, classify(ctx, err)
		case status == records.StatusDeleted:
			out.Removed++
		}
	}
	out.Detail = c.mode + " in " + c.source
	return out, nil
}

// Holds reports whether any of the subject's records is still live (tombstone mode) or still
// carries a payload (purge mode).
func (c *Connector) Holds(ctx context.Context, s erasure.Subject) (bool, error) {
	st, err := c.bound()
	if err != nil {
		return false, err
	}
	for _, id := range c.ids(s) {
		rec, err := st.Get(ctx, c.source, id)
		switch {
		case erasure.ErrorCode(err) == erasure.ENOTFOUND:
			continue
		case err != nil:
			return false, classify(ctx, err)
		case !rec.Deleted:
			return true, nil
		case c.mode == ModePurge && rec.Payload != nil:
			return true, nil
		}
	}
	return false, nil
}

// Check reports whether the store is bound and answers.
func (c *Connector) Check(ctx context.Context) error {
	st, err := c.bound()
	if err != nil {
		return err
	}
	if err := st.Ping(ctx); err != nil {
		return erasure.Transientf("records connector of %s: the record store does not answer: %v", c.dataset, err)
	}
	return nil
}

// Close does nothing: the store belongs to the server.
func (c *Connector) Close() error { return nil }
