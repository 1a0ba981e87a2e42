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
// audited (see records.Write.Force). With retention: { older_than: 5y } (no column) the
// dataset's retention purges the payloads of tombstones deleted before then; a replay after a
// restore erases again the records whose ids were erased since the backup. Erasing a record
// that is already a tombstone (or purged, or never seen) succeeds with nothing removed, and
// marks the tombstone as erased. Build does no I/O: the connector asks for the server's record store (SharedStore),
// which the server provides once it is open; Bind binds one by hand.
//
// Under a guard (erasure.GuardFrom, max_removed) Erase first counts the records it would
// change (live ones; in purge mode, tombstones still carrying a payload too) and fails with a
// permanent *erasure.GuardError, writing nothing, when they exceed the limit. A canary's plant
// block gives its record's payload (see plantBlock).
package recordsconn

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
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
	if r := b.Dataset.Retention; r != nil && r.Column != "" {
		b.Errorf(nil, "retention.column does not apply to records: a records dataset's retention purges the payloads of tombstones deleted more than older_than ago")
		ok = false
	}
	if !ok {
		return nil
	}
	b.Dataset.Keys = []string{cfg.Key.Identifier}
	c := &Connector{dataset: b.Dataset.Name, source: cfg.Source, mode: cfg.Mode, identifier: cfg.Key.Identifier}
	if b.Dataset.Canary != nil {
		var p plantBlock
		if !b.DecodePlant(&p) {
			return nil
		}
		c.plantPayload = json.RawMessage(`{"erasure_canary":true}`)
		if p.Payload != "" {
			if !json.Valid([]byte(p.Payload)) || !strings.HasPrefix(strings.TrimSpace(p.Payload), "{") {
				b.Errorf(registry.Child(b.Plant, "payload"), "canary.plant: payload must be a JSON object")
				return nil
			}
			c.plantPayload = json.RawMessage(p.Payload)
		}
	}
	SharedStore.Use(b.Resources, c.bind)
	return c
}

// plantBlock is the canary's plant block: the payload of the canary record
//
//	canary: { plant: { payload: '{"title": "canary"}' } }   # default {"erasure_canary":true}
//
// Plant writes a record whose id is the canary subject's record id with that payload (a new
// live record, as the catalogue's sources write them); Remains reads it back as the catalogue
// serves it: still live (tombstone mode), or a tombstone still carrying its payload (purge
// mode).
type plantBlock struct {
	Payload string `yaml:"payload"`
}

var _ erasure.Planter = (*Connector)(nil)

// Plant writes the canary's record (one per record id of s).
func (c *Connector) Plant(ctx context.Context, s erasure.Subject) error {
	st, err := c.bound()
	if err != nil {
		return err
	}
	if c.plantPayload == nil {
		return erasure.Permanentf("records: dataset %s has no canary plant", c.dataset)
	}
	ids := c.ids(s)
	if len(ids) == 0 {
		return erasure.Permanentf("records: the canary subject has no valid %s", c.identifier)
	}
	for _, id := range ids {
		if _, _, err := st.Put(ctx, c.source, records.Write{ID: id, Payload: c.plantPayload}); err != nil {
			return classify(ctx, err)
		}
	}
	return nil
}

// Remains reports whether a canary record is still served as a record (see plantBlock).
func (c *Connector) Remains(ctx context.Context, s erasure.Subject) (bool, error) {
	st, err := c.bound()
	if err != nil {
		return false, err
	}
	n, err := c.holding(ctx, st, s)
	return n > 0, err
}

// Connector erases a subject's records of one source. It implements erasure.Eraser,
// erasure.Verifier and erasure.Checker.
type Connector struct {
	dataset, source, mode, identifier string
	// plantPayload is the canary record's payload (nil without a canary).
	plantPayload json.RawMessage

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
	if g := erasure.GuardFrom(ctx); g.MaxRemoved > 0 {
		// Counted before anything is written: the records the erase would change.
		n, err := c.holding(ctx, st, s)
		if err != nil {
			return erasure.Outcome{}, err
		}
		if err := g.Check(c.dataset, "records", n); err != nil {
			return erasure.Outcome{}, err
		}
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
	n, err := c.holding(ctx, st, s)
	return n > 0, err
}

// holding counts the subject's records an erase would change: live ones (tombstone mode), or
// those still carrying a payload (purge mode).
func (c *Connector) holding(ctx context.Context, st records.Service, s erasure.Subject) (int64, error) {
	var n int64
	for _, id := range c.ids(s) {
		rec, err := st.Get(ctx, c.source, id)
		switch {
		case erasure.ErrorCode(err) == erasure.ENOTFOUND:
			continue
		case err != nil:
			return 0, classify(ctx, err)
		case !rec.Deleted:
			n++
		case c.mode == ModePurge && rec.Payload != nil:
			n++
		}
	}
	return n, nil
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
