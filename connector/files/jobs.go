package files

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"erasure"
)

// Jobs: retention and replay. Both remove the rows a predicate chooses on one field of each
// row (a timestamp older than a cutoff; a key whose keyed hash is an erased subject's), with
// the machinery of sweeps: every partition with such a row is rewritten beside itself, the
// count is approved, then every rewritten partition is swapped in (or, refused, dropped). A job
// keeps its journal in <state>/jobs/<id>/ and holds the snapshot's lock; a job a crash
// interrupted is dropped by the next one (its prepared copies deleted), and its rows are
// removed by running again: both jobs are idempotent.

var (
	_ erasure.Retainer = (*Connector)(nil)
	_ erasure.Replayer = (*Connector)(nil)
)

const jobPrefix = "job-"

func isJobID(id string) bool { return strings.HasPrefix(id, jobPrefix) }

func (c *Connector) jobsDir() string { return filepath.Join(c.cfg.StateDir, "jobs") }

// withField returns a connector over the same snapshot whose rows are matched on field.
func (c *Connector) withField(field string) *Connector {
	cfg := c.cfg
	cfg.Key.Field = field
	jc := newConnector(cfg)
	jc.ikey.Store(c.ikey.Load()) // the same index key: its sidecars serve c
	return jc
}

// dropJobs removes the journals and prepared copies of jobs a crash interrupted.
func (c *Connector) dropJobs() {
	ents, err := os.ReadDir(c.jobsDir())
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() && isJobID(e.Name()) {
			c.removeTemps(e.Name())
			os.RemoveAll(filepath.Join(c.jobsDir(), e.Name()))
		}
	}
}

// runJob removes, from every partition, the rows whose field's value match chooses, once
// approve accepts their count. It returns how many rows matched and how many were removed.
func (c *Connector) runJob(ctx context.Context, field string, match func([]byte) bool, approve func(int64) error) (matched, removed int64, err error) {
	unlock, err := c.lock()
	if err != nil {
		return 0, 0, err
	}
	defer unlock()
	c.dropJobs()
	jc := c.withField(field)
	var b [14]byte
	rand.Read(b[:])
	plan := &Plan{ID: jobPrefix + hex.EncodeToString(b[:]), keys: &keySet{match: match}, started: time.Now().UTC(), known: map[string]bool{}}
	parts, err := jc.Partitions(ctx)
	if err != nil {
		return 0, 0, err
	}
	plan.add(parts)
	if err := os.MkdirAll(filepath.Join(jc.journalDir(plan.ID), "parts"), 0o700); err != nil {
		return 0, 0, classifyIO(fmt.Errorf("files: creating job journal: %w", err))
	}
	prog := newTracker(progressFrom(ctx), plan)
	ctx = withTracker(ctx, prog)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jc.cfg.Workers)
	for _, p := range plan.Partitions {
		g.Go(func() error {
			res, err := jc.RewritePartition(gctx, plan, p)
			mu.Lock()
			matched += res.Removed
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		jc.Abort(plan)
		if ctx.Err() != nil {
			return matched, 0, interrupted(ctx.Err())
		}
		return matched, 0, interrupted(err)
	}
	if err := approve(matched); err != nil {
		jc.Abort(plan)
		return matched, 0, err
	}
	rep, err := jc.Commit(ctx, plan)
	prog.final()
	if err != nil {
		jc.Abort(plan)
		return matched, 0, interrupted(err)
	}
	return matched, rep.Removed, nil
}

// Expire implements erasure.Retainer: the rows whose retention column (a field, as the key
// field is given) holds a time before cutoff are removed in a job. A row whose field is
// missing, null or not a time it can read is kept. Times are read as the dataset's retention
// format says (see ParseTime). A dry run still prepares the rewritten partitions (the count is
// theirs), then drops them.
func (c *Connector) Expire(ctx context.Context, cutoff time.Time, approve func(int64) error) (erasure.RetentionResult, error) {
	if c.retention == nil {
		return erasure.RetentionResult{}, erasure.Errorf(erasure.EINVALID, "files: the dataset has no retention policy")
	}
	format := c.retention.Format
	matched, removed, err := c.runJob(ctx, c.retention.Column, func(v []byte) bool {
		t, ok := ParseTime(v, format)
		return ok && t.Before(cutoff)
	}, approve)
	return erasure.RetentionResult{Expired: matched, Removed: removed}, err
}

// Replay implements erasure.Replayer: every row whose key field's value match accepts is
// removed in a job (counted only when dryRun). Scanned and Matched count rows.
func (c *Connector) Replay(ctx context.Context, match func(string) bool, dryRun bool, progress func(erasure.ReplayProgress)) (erasure.ReplayResult, error) {
	var last Progress
	ctx = ContextWithProgress(ctx, func(p Progress) {
		last = p
		if progress != nil {
			progress(erasure.ReplayProgress{ReplayResult: erasure.ReplayResult{Scanned: p.RowsScanned, Matched: p.RowsRemoved}})
		}
	})
	matched, removed, err := c.runJob(ctx, c.cfg.Key.Field, func(v []byte) bool { return match(string(v)) }, func(int64) error {
		if dryRun {
			return erasure.ErrDryRun
		}
		return nil
	})
	if dryRun && errors.Is(err, erasure.ErrDryRun) {
		err = nil
	}
	return erasure.ReplayResult{Scanned: last.RowsScanned, Matched: matched, Removed: removed}, err
}

// ParseTime reads a row's time as format says: unix (seconds), unix_ms, rfc3339 (also a bare
// date, 2006-01-02), or auto: a number is Unix time in seconds, milliseconds, microseconds or
// nanoseconds by its magnitude (below 1e11, 1e14, 1e17, above), text is RFC 3339, "2006-01-02
// 15:04:05" (UTC) or a date. It reports false for anything else.
func ParseTime(v []byte, format string) (time.Time, bool) {
	s := strings.TrimSpace(string(v))
	if s == "" {
		return time.Time{}, false
	}
	number := func() (float64, bool) {
		f, err := strconv.ParseFloat(s, 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	text := func() (time.Time, bool) {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t, true
			}
		}
		return time.Time{}, false
	}
	switch format {
	case "unix":
		f, ok := number()
		return unixTime(f, 1e9), ok
	case "unix_ms":
		f, ok := number()
		return unixTime(f, 1e6), ok
	case "rfc3339":
		return text()
	}
	if f, ok := number(); ok {
		a := math.Abs(f)
		switch {
		case a < 1e11:
			return unixTime(f, 1e9), true
		case a < 1e14:
			return unixTime(f, 1e6), true
		case a < 1e17:
			return unixTime(f, 1e3), true
		}
		return unixTime(f, 1), true
	}
	return text()
}

// unixTime converts f units of nsPer nanoseconds since the epoch.
func unixTime(f, nsPer float64) time.Time {
	sec, frac := math.Modf(f * nsPer / 1e9)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}
