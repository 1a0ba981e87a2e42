package files

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/highwayhash"
	"golang.org/x/sync/errgroup"

	"erasure"
)

// Connector sweeps one snapshot directory. It is safe for concurrent use; one sweep at a time
// per snapshot is the caller's business (Sweep, Resume and BuildIndex take a lock file in the
// state directory so that two processes never run them at once).
type Connector struct {
	// name is the dataset's, for messages (the snapshot's path when built without one).
	name string
	cfg  Config
	path []string // key path segments (JSON, Parquet); CSV uses cfg.Key.Field whole
	// plant is the dataset's canary partition (nil without a canary).
	plant *plantSpec
	// retention is the dataset's retention policy (Expire), nil when it has none.
	retention *erasure.Retention
	// indexRead counts the skip index bytes read, for reports.
	indexRead atomic.Int64
	// plans are the key sets of the shared sweeps this process worked on (units.go).
	plans planCache
	// ikey keys the skip index's hashes (SetIndexKey).
	ikey atomic.Pointer[indexKey]
}

var (
	_ erasure.Connector = (*Connector)(nil)
	_ erasure.Sweeper   = (*Connector)(nil)
	_ erasure.Checker   = (*Connector)(nil)
	_ erasure.Verifier  = (*Connector)(nil)
)

// New returns a connector for cfg after validating it (an EINVALID *erasure.Error listing
// every problem). It performs no I/O.
func New(cfg Config) (*Connector, error) {
	if ps := cfg.normalize(); len(ps) > 0 {
		e := erasure.Errorf(erasure.EINVALID, "files: %s", ps[0].msg)
		for _, p := range ps {
			e.Details = append(e.Details, p.msg)
		}
		return nil, e
	}
	return newConnector(cfg), nil
}

func newConnector(cfg Config) *Connector {
	c := &Connector{name: cfg.Path, cfg: cfg}
	// Until the server gives the deployment's key (SetIndexKey), a random one: sidecars then
	// serve only this connector.
	key := make([]byte, highwayhash.Size)
	rand.Read(key)
	c.ikey.Store(newIndexKey(key))
	if cfg.Format != formatCSV {
		c.path = strings.Split(cfg.Key.Field, ".")
	}
	return c
}

// Config returns the connector's configuration with defaults filled in.
func (c *Connector) Config() Config { return c.cfg }

// Close releases nothing: the connector holds no open files between calls.
func (c *Connector) Close() error { return nil }

// Keys returns the distinct values of the connector's identifier type in batch, sorted: the
// key set a sweep of batch erases.
func (c *Connector) Keys(batch []erasure.SweepSubject) []string {
	var keys []string
	for _, s := range batch {
		keys = append(keys, s.Subject.Values(c.cfg.Key.Identifier)...)
	}
	return normalizeKeys(keys)
}

func normalizeKeys(keys []string) []string {
	out := append([]string(nil), keys...)
	sort.Strings(out)
	j := 0
	for i, k := range out {
		if k == "" || (i > 0 && k == out[i-1]) {
			continue
		}
		out[j] = k
		j++
	}
	return out[:j]
}

// Partition is one partition file of the snapshot.
type Partition struct {
	// Path is slash-separated and relative to the snapshot directory.
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// Partitions lists the snapshot's partition files, sorted by path. Hidden names (starting with
// "." or "_", such as the state directory, temporary files and _SUCCESS markers) and files not
// matching the pattern are not partitions; symbolic links are not followed.
func (c *Connector) Partitions(ctx context.Context) ([]Partition, error) {
	root := c.cfg.Path
	st, err := os.Stat(root)
	if err != nil {
		return nil, classifyIO(fmt.Errorf("files: snapshot directory %s: %w", root, err))
	}
	if !st.IsDir() {
		return nil, erasure.Permanentf("files: snapshot path %s is not a directory", root)
	}
	stateAbs, _ := filepath.Abs(c.cfg.StateDir)
	var out []Partition
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		name := d.Name()
		if p != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if abs, _ := filepath.Abs(p); abs == stateAbs {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !c.matches(name) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		out = append(out, Partition{Path: filepath.ToSlash(rel), Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, classifyIO(fmt.Errorf("files: listing %s: %w", root, err))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// matches reports whether a base name is a partition of the configured format.
func (c *Connector) matches(name string) bool {
	if c.cfg.Pattern != "" {
		ok, _ := path.Match(c.cfg.Pattern, name)
		return ok
	}
	if strings.HasSuffix(name, ".gz") {
		if c.cfg.Compression == "none" || c.cfg.Format == formatParquet {
			return false
		}
		name = strings.TrimSuffix(name, ".gz")
	} else if c.cfg.Compression == "gzip" {
		return false
	}
	var exts []string
	switch c.cfg.Format {
	case formatJSONL:
		exts = []string{".jsonl", ".ndjson", ".json"}
	case formatCSV:
		exts = []string{".csv"}
	case formatParquet:
		exts = []string{".parquet"}
	}
	for _, e := range exts {
		if strings.HasSuffix(name, e) {
			return true
		}
	}
	return false
}

// gzipped reports whether a partition's bytes are gzip-compressed.
func (c *Connector) gzipped(rel string) bool {
	switch c.cfg.Compression {
	case "gzip":
		return true
	case "none":
		return false
	}
	return c.cfg.Format != formatParquet && strings.HasSuffix(rel, ".gz")
}

func (c *Connector) abs(rel string) string { return filepath.Join(c.cfg.Path, filepath.FromSlash(rel)) }

// Sweep erases every row whose key is one of the batch subjects' values, from every partition,
// in parallel across Config.Workers. It is the whole-sweep convenience over Begin,
// RewritePartition and Commit, holding the snapshot's lock throughout.
//
// A sweep commits in two phases: every partition that holds a queued key is first rewritten
// into a synced temporary file beside it; only when all are ready is each renamed over its
// original and the directories synced. So a sweep that fails before the swap (bad input, a
// full disk, a cancelled context) swaps nothing: its temporary files and journal are removed
// and it returns the error, naming the file at fault. A crash at any point leaves a journal
// that Resume, or a Sweep with the same batch, finishes. Sweep is idempotent: running it again
// after success changes nothing.
//
// Errors: *erasure.PermanentError for bad input or configuration (a corrupt file, a missing
// key column, a snapshot directory that does not exist), *erasure.TransientError for I/O
// failures, a sweep already running and a cancelled context (wrapping the context's error).
func (c *Connector) Sweep(ctx context.Context, batch []erasure.SweepSubject) (erasure.SweepResult, error) {
	keys := c.Keys(batch)
	if len(keys) == 0 {
		return erasure.SweepResult{}, nil
	}
	unlock, err := c.lock()
	if err != nil {
		return erasure.SweepResult{}, err
	}
	defer unlock()
	rep, err := c.run(ctx, keys, "", batch)
	return c.result(rep, batch, err), interrupted(err)
}

// result is what a committed sweep of batch reports: its totals and, per subject's task, the
// rows its keys matched, from the journal.
func (c *Connector) result(rep Report, batch []erasure.SweepSubject, err error) erasure.SweepResult {
	res := rep.SweepResult()
	if err != nil {
		return res
	}
	res.PerTask = map[int64]int64{}
	for _, s := range batch {
		for _, v := range normalizeKeys(s.Subject.Values(c.cfg.Key.Identifier)) {
			res.PerTask[s.TaskID] += rep.RemovedByKey[v]
		}
	}
	return res
}

// interrupted returns a cancelled or expired context's error as a *erasure.TransientError (the
// caller tries again later), and any other error unchanged.
func interrupted(err error) error {
	var te *erasure.TransientError
	if err == nil || erasure.IsPermanent(err) || errors.As(err, &te) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return erasure.Transient(err, 0)
	}
	return err
}

// Resume finishes every sweep whose journal is in the state directory (sweeps interrupted by a
// crash or by a failed swap) and returns their reports. It is for a process that runs the
// connector on its own; the server resumes sweeps through its store instead (an interrupted
// sweep is executed again, and Begin reopens the journal of the same key set). Resume with
// nothing to finish returns nil, nil.
//
// A journal that is not believed (malformed, unsealed as journals from before they were
// sealed are, or sealed under another index key) cannot be finished: its key set may not be
// the sweep's. Resume discards it with the sweep's temporary files, logs a warning, reports
// it with Discarded set (no subject erased, nothing counted) and goes on with the others.
// That is always safe: a journal only lets a sweep skip work, partitions the sweep already
// swapped stay swapped, and the next sweep of its subjects (whose tasks are still queued)
// reads every partition again. The error is that of the first sweep that failed; the sweeps
// after it are left for the next Resume.
func (c *Connector) Resume(ctx context.Context) ([]Report, error) {
	unlock, err := c.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	ids, err := c.journals()
	if err != nil {
		return nil, err
	}
	// The journals not believed are discarded first: a sweep resumed below discards them as
	// it commits (dropSubsumed), and they must be reported whatever order the ids come in.
	var out []Report
	var believed []string
	for _, id := range ids {
		_, err := c.openJournal(id)
		why, damaged := damagedJournal(err)
		if erasure.ErrorCode(err) == erasure.EINVALID {
			why, damaged = "its name is not a sweep id", true // no sweep wrote it
		}
		if damaged {
			c.discardJournal(id, why)
			out = append(out, Report{ID: id, Discarded: true, Reason: why})
		} else {
			believed = append(believed, id)
		}
	}
	for _, id := range believed {
		j, err := c.openJournal(id)
		if erasure.ErrorCode(err) == erasure.ENOTFOUND {
			// Aborted since it was listed (AbortSweep takes no lock), or dropped by a sweep
			// resumed before it that covered its keys.
			continue
		} else if err != nil {
			return out, err
		}
		rep, err := c.run(ctx, j.Keys, id, nil)
		out = append(out, rep)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// run executes one whole sweep of keys (a resumed one when id is set). When batch is given (the
// subjects the keys come from), the guard's max_removed is checked for each subject once every
// partition is prepared, before anything is swapped.
func (c *Connector) run(ctx context.Context, keys []string, id string, batch []erasure.SweepSubject) (Report, error) {
	var plan *Plan
	var err error
	if id != "" {
		plan, err = c.OpenPlan(ctx, id)
	} else {
		plan, err = c.Begin(ctx, keys)
	}
	if err != nil {
		return Report{}, err
	}
	indexBase := c.indexRead.Load()
	prog := newTracker(progressFrom(ctx), plan)
	ctx = withTracker(ctx, prog)
	if err := c.rewriteAll(ctx, plan, plan.Partitions); err != nil {
		if errors.Is(err, errCommitted) {
			return Report{}, err
		}
		c.Abort(plan)
		return Report{}, err
	}
	// Partitions that appeared while the sweep ran are swept too, before the swap.
	for round := 0; round < 3; round++ {
		parts, err := c.Partitions(ctx)
		if err != nil {
			c.Abort(plan)
			return Report{}, err
		}
		fresh := plan.unknown(parts)
		if len(fresh) == 0 {
			break
		}
		plan.add(fresh)
		prog.grow(fresh)
		if err := c.rewriteAll(ctx, plan, fresh); err != nil {
			c.Abort(plan)
			return Report{}, err
		}
	}
	if batch != nil {
		if err := c.CheckSubjects(ctx, plan, batch); err != nil {
			c.Abort(plan)
			return Report{}, err
		}
	}
	rep, err := c.Commit(ctx, plan)
	rep.IndexBytes = c.indexRead.Load() - indexBase
	prog.final()
	return rep, err
}

var errCommitted = errors.New("files: sweep already committing")

// rewriteAll runs RewritePartition on parts across the configured workers and stops at the
// first error, naming its partition.
func (c *Connector) rewriteAll(ctx context.Context, plan *Plan, parts []Partition) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Workers)
	for _, p := range parts {
		g.Go(func() error {
			_, err := c.RewritePartition(gctx, plan, p)
			return err
		})
	}
	err := g.Wait()
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// CheckSubjects applies the guard of ctx (max_removed) to each subject of batch, once every
// partition of plan is prepared and before Commit: it sums the rows each subject's keys match,
// as the partitions' journal markers recorded them, and returns a permanent *erasure.GuardError
// naming the tasks of the subjects over the limit (subjects forced past the guard are not
// held to it). A worker of a shared sweep calls it before Commit, as Sweep does.
func (c *Connector) CheckSubjects(ctx context.Context, plan *Plan, batch []erasure.SweepSubject) error {
	g := erasure.GuardFrom(ctx)
	if g.MaxRemoved <= 0 {
		return nil
	}
	perKey := c.keyHits(plan)
	ge := &erasure.GuardError{Dataset: c.name, Unit: "rows", Limit: g.MaxRemoved}
	for _, s := range batch {
		if s.OverrideGuard {
			continue
		}
		var n int64
		for _, k := range normalizeKeys(s.Subject.Values(c.cfg.Key.Identifier)) {
			if i := sort.SearchStrings(plan.Keys, k); i < len(plan.Keys) && plan.Keys[i] == k {
				n += perKey[i]
			}
		}
		if n > g.MaxRemoved {
			ge.Tasks = append(ge.Tasks, s.TaskID)
			ge.Count = max(ge.Count, n)
		}
	}
	if len(ge.Tasks) == 0 {
		return nil
	}
	return erasure.Permanent(ge)
}

// keyHits sums, per key (by its index in plan.Keys), the rows it matched in every partition,
// as the partitions' journal markers recorded them.
func (c *Connector) keyHits(plan *Plan) []int64 {
	perKey := make([]int64, len(plan.Keys))
	for _, p := range plan.Partitions {
		m, ok := c.validMarker(plan.ID, p.Path)
		if !ok {
			continue // Commit refuses a sweep with a partition not handled
		}
		for i, n := range m.Hits {
			if i >= 0 && i < len(perKey) {
				perKey[i] += n
			}
		}
	}
	return perKey
}

// Holds reports whether any partition still has a row keyed by one of the subject's values of
// the connector's identifier type. It reads every partition the skip index cannot rule out,
// stopping at the first match. Errors are classified as Sweep's.
func (c *Connector) Holds(ctx context.Context, s erasure.Subject) (bool, error) {
	found, err := c.holds(ctx, s)
	return found, interrupted(err)
}

func (c *Connector) holds(ctx context.Context, s erasure.Subject) (bool, error) {
	keys := normalizeKeys(s.Values(c.cfg.Key.Identifier))
	if len(keys) == 0 {
		return false, nil
	}
	ks := newKeySet(keys)
	parts, err := c.Partitions(ctx)
	if err != nil {
		return false, err
	}
	var mu sync.Mutex
	found := false
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Workers)
	for _, p := range parts {
		g.Go(func() error {
			if c.cfg.Index {
				if ix, ok := c.readIndex(p.Path); ok && !ix.mayHold(ks.indexHashes(c.indexKey())) {
					return nil
				}
			}
			st, err := c.process(gctx, p.Path, ks, modeFind, nil)
			if err != nil {
				return err
			}
			if st.removed > 0 {
				mu.Lock()
				found = true
				mu.Unlock()
				return errFound
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil && !errors.Is(err, errFound) {
		return false, err
	}
	return found, nil
}

var errFound = errors.New("found")

// Check verifies that the snapshot directory can be listed and that the first partition has
// the key field (CSV header, Parquet column); it changes nothing. A snapshot with no partition
// yet passes.
func (c *Connector) Check(ctx context.Context) error {
	parts, err := c.Partitions(ctx)
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		return nil
	}
	_, err = c.process(ctx, parts[0].Path, newKeySet(nil), modeCheck, nil)
	return err
}

// logger is the process's logger at the time of logging, in group files: a logger taken when
// the connector was built would still write through the default of then, whose lines a later
// slog.SetDefault folds into another handler's messages.
func (c *Connector) logger() *slog.Logger { return slog.Default().WithGroup("files") }
