package reindex

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"erasure"
	"erasure/records"
)

// checkpoint is the on-disk state of a reindex.
type checkpoint struct {
	Key      string         `json:"key"`
	Segments []checkSegment `json:"segments"`
	mu       sync.Mutex
	path     string
	last     time.Time
}

type checkSegment struct {
	Partition string          `json:"partition"`
	Segment   records.Segment `json:"segment"`
	// Cursor is the last id sent (exclusive lower bound on resume).
	Cursor string `json:"cursor,omitempty"`
	Done   bool   `json:"done,omitempty"`
	Sent   int64  `json:"sent"`
}

func (c *checkpoint) save(force bool) error {
	if c.path == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !force && time.Since(c.last) < time.Second {
		return nil
	}
	c.last = time.Now()
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, c.path)
}

// Run streams records from r to sink in batches bounded by count and bytes: the live
// partition (tombstones not yet archived included, so the index drops them), and deleted
// too with IncludeDeleted. Sources are read in Parallel segments at once. Delivery is at
// least once: a resumed reindex may send again the batches after its last checkpoint.
// EINVALID for bad options, a bad source or id, or a checkpoint file of another reindex;
// the Reader's and the Sink's errors stop it and are returned, with the report so far.
func Run(ctx context.Context, r records.Reader, sink records.Sink, o records.ReindexOptions) (*records.ReindexReport, error) {
	if o.BatchRecords == 0 {
		o.BatchRecords = 1000
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = 4 << 20
	}
	if o.Parallel == 0 {
		o.Parallel = 4
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = time.Second
	}
	if o.BatchRecords < 1 || o.BatchBytes < 1024 || o.Parallel < 1 || o.Parallel > 64 || o.Limit < 0 {
		return nil, erasure.Errorf(erasure.EINVALID, "reindex needs batch records ≥ 1, batch bytes ≥ 1024, 1-64 parallel segments and a positive limit")
	}
	if o.Source != "" {
		if err := records.ValidSource(o.Source); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	rep := &records.ReindexReport{}
	var n counters
	var total int64
	stopProgress := func() {}
	report := func(done bool) {
		if o.Progress == nil {
			return
		}
		p := records.Progress{Records: n.records.Load(), Bytes: n.bytes.Load(), Total: total, Elapsed: time.Since(start), Done: done}
		if s := p.Elapsed.Seconds(); s > 0 {
			p.Rate = float64(p.Records) / s
		}
		if p.Rate > 0 && total > p.Records {
			p.ETA = time.Duration(float64(total-p.Records) / p.Rate * float64(time.Second))
		}
		o.Progress(p)
	}
	if o.Progress != nil {
		tick := time.NewTicker(o.ProgressEvery)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-tick.C:
					report(false)
				case <-stop:
					return
				}
			}
		}()
		stopProgress = func() { tick.Stop(); close(stop); wg.Wait() }
	}
	finish := func(err error) (*records.ReindexReport, error) {
		stopProgress()
		rep.Records, rep.Bytes, rep.Batches, rep.Elapsed = n.records.Load(), n.bytes.Load(), n.batches.Load(), time.Since(start)
		report(err == nil)
		return rep, err
	}

	if len(o.IDs) > 0 {
		if o.Source == "" {
			return finish(erasure.Errorf(erasure.EINVALID, "specific ids need a source"))
		}
		total = int64(len(o.IDs))
		w := newBatcher(ctx, sink, o, 0, &n)
		for _, id := range dedupe(o.IDs) {
			if err := records.ValidID(id); err != nil {
				return finish(err)
			}
			line, part, found, err := r.Lookup(ctx, o.Source, id)
			if err != nil {
				return finish(err)
			}
			if !found || (part != records.Live && !o.IncludeDeleted) {
				rep.Missing++
				if o.Warn != nil {
					what := "was never seen"
					if found {
						what = "is archived (in deleted)"
					}
					o.Warn(fmt.Sprintf("record %s/%s %s: not streamed", o.Source, records.Clip(id), what))
				}
				continue
			}
			if err := w.add(id, line); err != nil {
				return finish(err)
			}
		}
		return finish(w.flush())
	}

	parts := []string{records.Live}
	if o.IncludeDeleted {
		parts = append(parts, records.Deleted)
	}
	sources := []string{o.Source}
	if o.Source == "" {
		var err error
		if sources, err = r.Sources(ctx); err != nil {
			return finish(err)
		}
	}
	keyb, _ := json.Marshal([]any{o.Source, o.Limit, o.IncludeDeleted, o.Parallel})
	sum := sha256.Sum256(keyb)
	cp := &checkpoint{Key: hex.EncodeToString(sum[:8]), path: o.Checkpoint}
	if o.Checkpoint != "" {
		if b, err := os.ReadFile(o.Checkpoint); err == nil {
			var old checkpoint
			if err := json.Unmarshal(b, &old); err != nil || old.Key != cp.Key {
				return finish(erasure.Errorf(erasure.EINVALID, "checkpoint %s belongs to another reindex: remove it or use another file", filepath.Base(o.Checkpoint)))
			}
			cp.Segments, rep.Resumed = old.Segments, true
		} else if !os.IsNotExist(err) {
			return finish(err)
		}
	}
	if !rep.Resumed {
		for _, part := range parts {
			for _, src := range sources {
				n := o.Parallel
				if o.Limit > 0 {
					n = 1
				}
				segs, t, err := r.Segments(ctx, part, src, n)
				if err != nil {
					return finish(err)
				}
				total += t
				for _, sg := range segs {
					cp.Segments = append(cp.Segments, checkSegment{Partition: part, Segment: sg})
				}
			}
		}
		if err := cp.save(true); err != nil {
			return finish(err)
		}
	} else {
		for _, cs := range cp.Segments {
			total += cs.Segment.Records
			if cs.Done || cs.Cursor != "" {
				n.records.Add(cs.Sent)
			}
		}
	}
	if o.Limit > 0 && total > o.Limit {
		total = o.Limit
	}
	rep.Segments = len(cp.Segments)

	// Run the segments, Parallel at a time. With a limit, segments run one after another so
	// that the first Limit records (in source, id order) are the ones sent.
	workers := o.Parallel
	if o.Limit > 0 {
		workers = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(o.Limit)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := runSegment(ctx, r, sink, o, cp, i, &left, &n); err != nil {
					errc <- err
					cancel()
					return
				}
			}
		}()
	}
	for i := range cp.Segments {
		if cp.Segments[i].Done {
			continue
		}
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		cp.save(true)
		return finish(err)
	}
	if err := ctx.Err(); err != nil {
		cp.save(true)
		return finish(err)
	}
	if o.Checkpoint != "" {
		os.Remove(o.Checkpoint)
	}
	return finish(nil)
}

func runSegment(ctx context.Context, r records.Reader, sink records.Sink, o records.ReindexOptions, cp *checkpoint, i int, left *atomic.Int64, n *counters) error {
	cp.mu.Lock()
	cs := cp.Segments[i]
	cp.mu.Unlock()
	seg := cs.Segment
	var limit int64
	if o.Limit > 0 {
		limit = left.Load()
		if limit <= 0 {
			return nil
		}
	}
	w := newBatcher(ctx, sink, o, i, n)
	w.sent = func(last string, n int) {
		cp.mu.Lock()
		cp.Segments[i].Cursor = last
		cp.Segments[i].Sent += int64(n)
		cp.mu.Unlock()
		cp.save(false)
	}
	err := r.ScanLines(ctx, cs.Partition, seg, cs.Cursor, limit, func(id string, line []byte) error {
		if o.Limit > 0 {
			left.Add(-1)
		}
		return w.add(id, line)
	})
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		return err
	}
	cp.mu.Lock()
	cp.Segments[i].Done = true
	cp.mu.Unlock()
	return cp.save(false)
}

// counters are a reindex's running totals, shared by its segments.
type counters struct{ records, bytes, batches atomic.Int64 }

// batcher collects lines into batches bounded by count and bytes.
type batcher struct {
	ctx                  context.Context
	sink                 records.Sink
	maxRecords, maxBytes int
	b                    records.Batch
	last                 string
	n                    *counters
	sent                 func(last string, n int)
}

func newBatcher(ctx context.Context, sink records.Sink, o records.ReindexOptions, seg int, n *counters) *batcher {
	return &batcher{ctx: ctx, sink: sink, maxRecords: o.BatchRecords, maxBytes: o.BatchBytes,
		b: records.Batch{Segment: seg, Body: make([]byte, 0, min(o.BatchBytes, 8<<20))}, n: n}
}

func (w *batcher) add(id string, line []byte) error {
	if w.b.Records > 0 && len(w.b.Body)+len(line)+1 > w.maxBytes {
		if err := w.flush(); err != nil {
			return err
		}
	}
	w.b.Body = append(w.b.Body, line...)
	w.b.Body = append(w.b.Body, '\n')
	w.b.Records++
	w.last = id
	if w.b.Records >= w.maxRecords || len(w.b.Body) >= w.maxBytes {
		return w.flush()
	}
	return nil
}

func (w *batcher) flush() error {
	if w.b.Records == 0 {
		return nil
	}
	w.b.LastID = w.last
	if err := w.sink.Send(w.ctx, &w.b); err != nil {
		return err
	}
	w.n.records.Add(int64(w.b.Records))
	w.n.bytes.Add(int64(len(w.b.Body)))
	w.n.batches.Add(1)
	if w.sent != nil {
		w.sent(w.last, w.b.Records)
	}
	w.b.Body, w.b.Records = w.b.Body[:0], 0
	return nil
}

func dedupe(ss []string) []string {
	seen := make(map[string]bool, len(ss))
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
