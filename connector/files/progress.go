package files

import (
	"context"
	"sync"
	"time"
)

// Progress is a running sweep's (or index build's) state, for a CLI to print rate and ETA.
type Progress struct {
	PartitionsDone  int `json:"partitions_done"`
	PartitionsTotal int `json:"partitions_total"`
	// BytesDone is the size of the partitions done (read, skipped or already handled);
	// BytesTotal the size of all. Their ratio is the share of the work done.
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
	// BytesRead is the partition bytes actually read so far, IndexBytes the skip index bytes.
	BytesRead   int64         `json:"bytes_read"`
	IndexBytes  int64         `json:"index_bytes"`
	RowsScanned int64         `json:"rows_scanned"`
	RowsRemoved int64         `json:"rows_removed"`
	Elapsed     time.Duration `json:"elapsed"`
}

// ProgressFunc receives progress reports. Calls are serialized; a slow function slows the
// sweep, so it should only print or store the value.
type ProgressFunc func(Progress)

type progressKey struct{}

// ContextWithProgress returns a context whose sweeps (Sweep, Resume, RewritePartition) report
// progress to fn after each partition and every 32 MiB read.
func ContextWithProgress(ctx context.Context, fn ProgressFunc) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

func progressFrom(ctx context.Context) ProgressFunc {
	fn, _ := ctx.Value(progressKey{}).(ProgressFunc)
	return fn
}

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
