package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"erasure"
)

// PolicyStore is what Policies needs of a store (store/sqlstore implements it).
type PolicyStore interface {
	erasure.Store
	erasure.HoldStore
	erasure.GraceStore
	erasure.SuppressionStore
	erasure.RetentionStore
	erasure.EscrowStore
	erasure.ErasedStore
}

// Policies runs the policies around erasure: legal holds, the end of grace windows, the
// suppression list, retention and replay. It implements erasure.HoldService,
// SuppressionService, RetentionService and ReplayService; the rules that change tasks are the
// domain's (machine.go), applied by the store.
type Policies struct {
	Store    PolicyStore
	Datasets []*erasure.Dataset
	// Identifiers and IdentifierTypes are the declared identifier types and how their values
	// are put in canonical form (as at intake), so that a hold, a check or an unsuppress of a
	// value matches what was erased.
	Identifiers     []string
	IdentifierTypes []erasure.IdentifierType
	// Hasher keys identifiers as the audit trail and the store do (required).
	Hasher erasure.Hasher
	// Suppression keys the suppression list (required for the suppression calls).
	Suppression erasure.Hasher
	// Guard, when set, is asked before a retention run removes rows, with their count: it
	// returns an error to refuse (a dataset's blast-radius guard). A dry run never asks it.
	Guard func(d *erasure.Dataset, expired int64) error
	// DefaultDeadline is the deadline of the erasure requests an escrow replay submits.
	DefaultDeadline time.Duration
	// Engine, when set, is woken when holds are released and escrow replays submit requests.
	Engine *Engine
	Now    func() time.Time
	Logger *slog.Logger

	mu      sync.Mutex
	base    context.Context
	running sync.WaitGroup
	replays map[string][]*erasure.Replay // by dataset, newest first
}

var (
	_ erasure.HoldService        = (*Policies)(nil)
	_ erasure.SuppressionService = (*Policies)(nil)
	_ erasure.RetentionService   = (*Policies)(nil)
	_ erasure.ReplayService      = (*Policies)(nil)
)

// RetentionStaleAfter is how long a retention run may stay running before another process
// takes its dataset over (its process is presumed dead).
const RetentionStaleAfter = 12 * time.Hour

func (p *Policies) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Policies) log() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

func (p *Policies) dataset(name string) (*erasure.Dataset, error) {
	for _, d := range p.Datasets {
		if d.Name == name {
			return d, nil
		}
	}
	return nil, erasure.Errorf(erasure.ENOTFOUND, "dataset %q not found", truncateID(name))
}

// newID returns prefix, "_" and 26 characters: milliseconds then random bits, like request ids.
func newID(prefix string, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	rand.Read(b[6:])
	return prefix + "_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// canonical checks that id's type is declared and puts its value in canonical form.
func (p *Policies) canonical(id erasure.Identifier) (erasure.Identifier, error) {
	if err := id.Validate(); err != nil {
		return id, err
	}
	if !slices.Contains(p.Identifiers, id.Type) {
		return id, erasure.Errorf(erasure.EINVALID, "identifier type %q is not declared in the registry (declared: %v)", id.Type, p.Identifiers)
	}
	for _, t := range p.IdentifierTypes {
		if t.Name == id.Type {
			v, err := t.Canonical(id.Value)
			if err != nil {
				return id, err
			}
			id.Value = v
		}
	}
	return id, nil
}

func (p *Policies) wake() {
	if p.Engine != nil {
		p.Engine.Wake()
	}
}

// AddHold implements erasure.HoldService.
func (p *Policies) AddHold(ctx context.Context, s erasure.HoldSpec, actor string) (*erasure.Hold, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	id, err := p.canonical(s.Identifier)
	if err != nil {
		return nil, err
	}
	datasets := slices.Clone(s.Datasets)
	slices.Sort(datasets)
	datasets = slices.Compact(datasets)
	for _, name := range datasets {
		if _, err := p.dataset(name); err != nil {
			return nil, erasure.Errorf(erasure.EINVALID, "hold: dataset %q is not registered", truncateID(name))
		}
	}
	h, err := p.Store.AddHold(ctx, erasure.Hold{ID: newID("h", p.now()), Identifier: p.Hasher.Identifier(id), All: s.All, Datasets: datasets, Reason: s.Reason}, actor)
	if err == nil {
		p.log().Info("legal hold placed", "hold", h.ID, "datasets", len(h.Datasets), "all", h.All, "actor", actor)
	}
	return h, err
}

// Holds implements erasure.HoldService.
func (p *Policies) Holds(ctx context.Context, f erasure.HoldFilter) ([]erasure.Hold, error) {
	return p.Store.Holds(ctx, f)
}

// Hold implements erasure.HoldService.
func (p *Policies) Hold(ctx context.Context, id string) (*erasure.Hold, error) {
	if !erasure.ValidHoldID(id) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "hold %q not found", truncateID(id))
	}
	return p.Store.Hold(ctx, id)
}

// ReleaseHold implements erasure.HoldService.
func (p *Policies) ReleaseHold(ctx context.Context, id, actor string) (*erasure.Hold, error) {
	if !erasure.ValidHoldID(id) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "hold %q not found", truncateID(id))
	}
	h, err := p.Store.ReleaseHold(ctx, id, actor)
	if err == nil {
		p.log().Info("legal hold released", "hold", h.ID, "actor", actor)
		p.wake()
	}
	return h, err
}

// EndGraceWindows ends the grace windows that are over (see erasure.GraceStore) and wakes the
// engine when it ended some.
func (p *Policies) EndGraceWindows(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := p.Store.EndGraceWindows(ctx, 100)
		total += n
		if err != nil || n < 100 {
			if total > 0 {
				p.log().Info("grace windows ended", "requests", total)
				p.wake()
			}
			return total, err
		}
	}
}

// suppressionHashes puts ids in canonical form and hashes them with the suppression key and
// the audit key.
func (p *Policies) suppressionHashes(ids []erasure.Identifier) (hashes, audit []string, err error) {
	if p.Suppression == nil {
		return nil, nil, erasure.Errorf(erasure.EINVALID, "suppression is off in this deployment")
	}
	if len(ids) == 0 {
		return nil, nil, erasure.Errorf(erasure.EINVALID, "identifiers are required")
	}
	if len(ids) > erasure.MaxSuppressionCheck {
		return nil, nil, erasure.Errorf(erasure.ETOOLARGE, "at most %d identifiers per call", erasure.MaxSuppressionCheck)
	}
	for _, id := range ids {
		c, err := p.canonical(id)
		if err != nil {
			return nil, nil, err
		}
		hashes = append(hashes, p.Suppression.Identifier(c))
		audit = append(audit, p.Hasher.Identifier(c))
	}
	return hashes, audit, nil
}

// CheckSuppressed implements erasure.SuppressionService.
func (p *Policies) CheckSuppressed(ctx context.Context, ids []erasure.Identifier) ([]bool, error) {
	hashes, _, err := p.suppressionHashes(ids)
	if err != nil {
		return nil, err
	}
	return p.Store.Suppressed(ctx, hashes)
}

// ExportSuppressions implements erasure.SuppressionService.
func (p *Policies) ExportSuppressions(ctx context.Context, typ string, fn func(hash string) error) error {
	if typ != "" && !slices.Contains(p.Identifiers, typ) {
		return erasure.Errorf(erasure.EINVALID, "identifier type %q is not declared in the registry", truncateID(typ))
	}
	return p.Store.Suppressions(ctx, typ, fn)
}

// Unsuppress implements erasure.SuppressionService.
func (p *Policies) Unsuppress(ctx context.Context, ids []erasure.Identifier, reason, actor string) ([]bool, error) {
	if strings.TrimSpace(reason) == "" || len(reason) > erasure.MaxHoldReason {
		return nil, erasure.Errorf(erasure.EINVALID, "reason is required (at most %d bytes): unsuppress is an audited operator action", erasure.MaxHoldReason)
	}
	hashes, audit, err := p.suppressionHashes(ids)
	if err != nil {
		return nil, err
	}
	out, err := p.Store.Unsuppress(ctx, hashes, audit, reason, actor)
	if err == nil {
		n := 0
		for _, ok := range out {
			if ok {
				n++
			}
		}
		p.log().Info("identifiers unsuppressed", "asked", len(ids), "removed", n, "actor", actor)
	}
	return out, err
}

// RunRetention implements erasure.RetentionService: the dataset's rows older than its
// retention are counted, the count is approved (a dry run stops there; the Guard may refuse
// it), and they are removed; the run is stored and audited with its counts either way.
func (p *Policies) RunRetention(ctx context.Context, dataset string, dryRun bool, actor string) (*erasure.RetentionRun, error) {
	d, err := p.dataset(dataset)
	if err != nil {
		return nil, err
	}
	if d.Retention == nil {
		return nil, erasure.Errorf(erasure.EINVALID, "dataset %s has no retention policy (retention: { older_than: 400d, column: created_at })", d.Name)
	}
	ret, ok := d.Conn.(erasure.Retainer)
	if !ok {
		return nil, erasure.Errorf(erasure.EINVALID, "dataset %s: connector %s cannot apply a retention policy", d.Name, d.Connector)
	}
	now := p.now()
	run := erasure.RetentionRun{ID: newID("ret", now), Dataset: d.Name, Cutoff: now.Add(-d.Retention.OlderThan).UTC().Truncate(time.Millisecond),
		DryRun: dryRun, Actor: actor, Started: now.UTC().Truncate(time.Millisecond)}
	if err := p.Store.StartRetention(ctx, run, now.Add(-RetentionStaleAfter)); err != nil {
		return nil, err
	}
	log := p.log().With("dataset", d.Name, "run", run.ID)
	res, runErr := ret.Expire(ctx, run.Cutoff, func(expired int64) error {
		log.Info("retention: rows past their retention", "expired", expired, "cutoff", run.Cutoff, "dry_run", dryRun)
		if dryRun {
			return erasure.ErrDryRun
		}
		if p.Guard != nil {
			return p.Guard(d, expired)
		}
		return nil
	})
	final, err := p.Store.FinishRetention(context.WithoutCancel(ctx), run.ID, res, runErr)
	if err != nil {
		return nil, errors.Join(err, runErr)
	}
	if runErr != nil && !errors.Is(runErr, erasure.ErrDryRun) {
		log.Error("retention run failed", "expired", res.Expired, "removed", res.Removed, "err", erasure.OneLine(runErr, 300))
		return final, runErr
	}
	log.Info("retention run done", "expired", res.Expired, "removed", res.Removed, "dry_run", dryRun)
	return final, nil
}

// RetentionRuns implements erasure.RetentionService.
func (p *Policies) RetentionRuns(ctx context.Context, dataset string, limit int) ([]erasure.RetentionRun, error) {
	if dataset != "" {
		if _, err := p.dataset(dataset); err != nil {
			return nil, err
		}
	}
	return p.Store.RetentionRuns(ctx, dataset, limit)
}

// RetentionRetry is how soon a failed retention run is tried again (sooner than its dataset's
// every when that is longer): a sweep holding a snapshot, a database restarting.
const RetentionRetry = time.Hour

// RetentionDue runs the retention of every dataset whose last run started Every ago or more
// (RetentionRetry when it failed), or never ran, one after the other, and returns how many it
// ran. A failure is logged and does not stop the others.
func (p *Policies) RetentionDue(ctx context.Context) int {
	n := 0
	for _, d := range p.Datasets {
		if d.Retention == nil || ctx.Err() != nil {
			continue
		}
		runs, err := p.Store.RetentionRuns(ctx, d.Name, 1)
		if err != nil {
			p.log().Error("retention: reading the last run", "dataset", d.Name, "err", err)
			continue
		}
		if len(runs) > 0 {
			every := d.Retention.Every
			if runs[0].State == erasure.RetentionFailed {
				every = min(every, RetentionRetry)
			}
			if runs[0].State == erasure.RetentionRunning || p.now().Before(runs[0].Started.Add(every)) {
				continue
			}
		}
		if _, err := p.RunRetention(ctx, d.Name, false, "retention"); err == nil {
			n++
		}
	}
	return n
}

// Start gives background replays the lifetime ctx; Wait waits for them after it is cancelled.
func (p *Policies) Start(ctx context.Context) {
	p.mu.Lock()
	p.base = ctx
	p.mu.Unlock()
}

// Wait returns once every background replay has stopped.
func (p *Policies) Wait() { p.running.Wait() }

// StartReplay implements erasure.ReplayService. A dataset whose connector scans keys
// (erasure.Replayer) is replayed by matching the keyed hash of each of its key values with
// those of the identifiers of requests completed since since; another one only from its
// escrow, whose subjects get new erasure requests of that dataset alone.
func (p *Policies) StartReplay(ctx context.Context, dataset string, since time.Time, dryRun bool, actor string) (*erasure.Replay, error) {
	d, err := p.dataset(dataset)
	if err != nil {
		return nil, err
	}
	now := p.now()
	if since.IsZero() || since.After(now) {
		return nil, erasure.Errorf(erasure.EINVALID, "since must be a time in the past: the time the backup was taken")
	}
	method := ""
	switch {
	case isReplayer(d) && len(d.Keys) == 1:
		method = "scan"
	case d.Escrow > 0:
		method = "escrow"
	case isReplayer(d):
		return nil, erasure.Errorf(erasure.EINVALID, "dataset %s is keyed by %d identifier types; a replay by scan needs one", d.Name, len(d.Keys))
	default:
		return nil, erasure.Errorf(erasure.EINVALID, "dataset %s cannot be replayed: connector %s cannot scan its keys, and it keeps no escrow (replay: { escrow: 180d })", d.Name, d.Connector)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.replays == nil {
		p.replays = map[string][]*erasure.Replay{}
	}
	if rs := p.replays[d.Name]; len(rs) > 0 && rs[0].State == erasure.ReplayRunning {
		return nil, erasure.Errorf(erasure.ECONFLICT, "replay %s of %s is running", rs[0].ID, d.Name)
	}
	rp := &erasure.Replay{ID: newID("rp", now), Dataset: d.Name, Since: since.UTC(), DryRun: dryRun, Method: method, State: erasure.ReplayRunning,
		Actor: actor, Started: now.UTC().Truncate(time.Millisecond), Progress: &erasure.ReplayProgress{}}
	p.replays[d.Name] = append([]*erasure.Replay{rp}, p.replays[d.Name]...)
	if len(p.replays[d.Name]) > 20 {
		p.replays[d.Name] = p.replays[d.Name][:20]
	}
	base := p.base
	if base == nil {
		base = context.Background()
	}
	p.running.Add(1)
	go func() {
		defer p.running.Done()
		p.runReplay(base, d, rp)
	}()
	out := *rp
	out.Progress = nil
	return &out, nil
}

func isReplayer(d *erasure.Dataset) bool {
	_, ok := d.Conn.(erasure.Replayer)
	return ok
}

// Replays implements erasure.ReplayService.
func (p *Policies) Replays(ctx context.Context, dataset string) ([]erasure.Replay, error) {
	if _, err := p.dataset(dataset); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []erasure.Replay
	for _, rp := range p.replays[dataset] {
		c := *rp
		if rp.Progress != nil {
			pr := *rp.Progress
			c.Progress = &pr
		}
		out = append(out, c)
	}
	return out, nil
}

// runReplay carries a replay to its end and records it.
func (p *Policies) runReplay(ctx context.Context, d *erasure.Dataset, rp *erasure.Replay) {
	log := p.log().With("dataset", d.Name, "replay", rp.ID)
	var err error
	if rp.Method == "scan" {
		err = p.replayScan(ctx, d, rp)
	} else {
		err = p.replayEscrow(ctx, d, rp)
	}
	p.mu.Lock()
	now := p.now().UTC().Truncate(time.Millisecond)
	final := *rp
	final.Finished, final.State, final.Progress = &now, erasure.ReplayDone, nil
	if err != nil {
		final.State, final.Error = erasure.ReplayFailed, erasure.OneLine(err, 500)
	}
	p.mu.Unlock()
	// Audited before it shows as ended, so that whoever sees it ended finds it in the trail.
	if rerr := p.Store.RecordReplay(context.WithoutCancel(ctx), final); rerr != nil {
		log.Error("replay not audited", "err", rerr)
	}
	p.mu.Lock()
	rp.Finished, rp.State, rp.Error = final.Finished, final.State, final.Error
	p.mu.Unlock()
	if err != nil {
		log.Error("replay failed", "err", final.Error, "scanned", final.Scanned, "removed", final.Removed)
		return
	}
	log.Info("replay done", "method", final.Method, "subjects", final.Subjects, "scanned", final.Scanned, "matched", final.Matched,
		"removed", final.Removed, "submitted", final.Submitted, "destroyed", final.Destroyed, "dry_run", final.DryRun)
}

// replayScan matches the dataset's key values with the keyed hashes of the identifiers of the
// requests completed since rp.Since.
func (p *Policies) replayScan(ctx context.Context, d *erasure.Dataset, rp *erasure.Replay) error {
	hashes, requests, err := p.Store.ErasedSince(ctx, rp.Since, d.Keys)
	if err != nil {
		return err
	}
	set := make(map[string]struct{}, len(hashes))
	for _, h := range hashes {
		set[h] = struct{}{}
	}
	typ := erasure.DefaultIdentifierType(d.Keys[0])
	for _, t := range p.IdentifierTypes {
		if t.Name == d.Keys[0] {
			typ = t
		}
	}
	p.mu.Lock()
	rp.Subjects = requests
	p.mu.Unlock()
	if len(set) == 0 {
		return nil
	}
	match := func(v string) bool {
		c, err := typ.Canonical(v)
		if err != nil {
			return false
		}
		_, ok := set[p.Hasher.Identifier(erasure.Identifier{Type: typ.Name, Value: c})]
		return ok
	}
	res, err := d.Conn.(erasure.Replayer).Replay(ctx, match, rp.DryRun, func(pr erasure.ReplayProgress) {
		p.mu.Lock()
		*rp.Progress = pr
		p.mu.Unlock()
	})
	p.mu.Lock()
	rp.ReplayResult = res
	rp.Progress.ReplayResult = res
	p.mu.Unlock()
	return err
}

// replayEscrow submits, for every subject the dataset's escrow still holds, an erasure request
// of that dataset alone (idempotent per replay and original request).
func (p *Policies) replayEscrow(ctx context.Context, d *erasure.Dataset, rp *erasure.Replay) error {
	subjects, destroyed, err := p.Store.OpenEscrow(ctx, d.Name, rp.Since)
	if err != nil {
		return err
	}
	p.mu.Lock()
	rp.Subjects, rp.Destroyed = len(subjects)+destroyed, destroyed
	rp.Progress.Total = int64(len(subjects))
	p.mu.Unlock()
	if rp.DryRun {
		return nil
	}
	deadline := p.DefaultDeadline
	if deadline <= 0 {
		deadline = 30 * 24 * time.Hour
	}
	for i, s := range subjects {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := p.now()
		key := p.Hasher.Sum([]byte("replay/1\x00" + rp.ID + "\x00" + s.RequestID))
		_, created, err := p.Store.CreateRequest(ctx, erasure.NewRequest{
			ID: NewRequestID(now), Subject: s.Subject, Reason: "replay", Deadline: now.Add(deadline).UTC(), SubmittedBy: rp.Actor,
			IdempotencyKey: key, Fingerprint: key, NoSuppress: true,
			Tasks: []erasure.TaskSpec{{Dataset: d.Name, Kind: erasure.TaskErase, Method: d.Method, Keys: d.Keys}},
		})
		if err != nil {
			return fmt.Errorf("submitting the replay of request %s: %w", s.RequestID, err)
		}
		p.mu.Lock()
		if created {
			rp.Submitted++
		}
		rp.Progress.Scanned, rp.Progress.Matched = int64(i+1), int64(i+1)
		rp.Scanned, rp.Matched = int64(i+1), int64(i+1)
		p.mu.Unlock()
	}
	p.wake()
	return nil
}
