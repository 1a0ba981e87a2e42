package files

import (
	"context"
	"sync"
	"time"

	"erasure"
)

// Progress is a running sweep's (or index build's) state, for a CLI to print rate and ETA: the
// domain's SweepProgress, which the pipeline keeps for the API to show.
type Progress = erasure.SweepProgress

// ProgressFunc receives progress reports. Calls are serialized; a slow function slows the
// sweep, so it should only print or store the value.
type ProgressFunc = erasure.SweepProgressFunc

// ContextWithProgress returns a context whose sweeps (Sweep, Resume, RewritePartition) report
// progress to fn after each partition and every 32 MiB read. It is
// erasure.ContextWithSweepProgress: the pipeline's sweeps report through the same context.
func ContextWithProgress(ctx context.Context, fn ProgressFunc) context.Context {
	return erasure.ContextWithSweepProgress(ctx, fn)
}

func progressFrom(ctx context.Context) ProgressFunc { return erasure.SweepProgressFrom(ctx) }

type trackerKey struct{}

func withTracker(ctx context.Context, t *tracker) context.Context {
	return context.WithValue(ctx, trackerKey{}, t)
}

// trackerFrom returns the context's tracker; for a lone RewritePartition with a progress
// function, one of its own; else nil, which tracks nothing.
func trackerFrom(ctx context.Context) *tracker {
	if t, ok := ctx.Value(trackerKey{}).(*tracker); ok {
		return t
	}
	if fn := progressFrom(ctx); fn != nil {
		return &tracker{fn: fn, start: time.Now()}
	}
	return nil
}

const emitEvery = 32 << 20

type tracker struct {
	mu       sync.Mutex
	fn       ProgressFunc
	p        Progress
	start    time.Time
	lastEmit int64
}

func newTracker(fn ProgressFunc, plan *Plan) *tracker {
	t := &tracker{fn: fn, start: time.Now()}
	if plan != nil {
		t.p.PartitionsTotal = len(plan.Partitions)
		t.p.BytesTotal = plan.BytesTotal
	}
	return t
}

func (t *tracker) grow(parts []Partition) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.PartitionsTotal += len(parts)
	for _, p := range parts {
		t.p.BytesTotal += p.Size
	}
}

func (t *tracker) read(n int64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.BytesRead += n
	if t.p.BytesRead-t.lastEmit >= emitEvery {
		t.emit()
	}
}

func (t *tracker) index(n int64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.p.IndexBytes += n
	t.mu.Unlock()
}

func (t *tracker) partDone(size, rows, removed int64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.PartitionsDone++
	t.p.BytesDone += size
	t.p.RowsScanned += rows
	t.p.RowsRemoved += removed
	t.emit()
}

func (t *tracker) final() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.emit()
}

// snapshot returns the current progress.
func (t *tracker) snapshot() Progress {
	if t == nil {
		return Progress{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.p
	p.Elapsed = time.Since(t.start)
	return p
}

func (t *tracker) emit() {
	t.lastEmit = t.p.BytesRead
	if t.fn != nil {
		p := t.p
		p.Elapsed = time.Since(t.start)
		t.fn(p)
	}
}
