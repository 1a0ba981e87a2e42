package records

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"erasure"
)

// RawRecord is a record as read for a reindex: its columns, not yet decoded.
type RawRecord struct {
	Source, ID string
	Version    int64
	DeletedAt  sql.NullInt64
	Reason     sql.NullString
	UpdatedAt  int64
	Payload    sql.RawBytes
}

// AppendJSON appends the record's JSON (the same fields as Record's) to b.
func (r *RawRecord) AppendJSON(b []byte) []byte {
	b = append(b, `{"source":`...)
	b = appendString(b, r.Source)
	b = append(b, `,"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, r.Version, 10)
	if r.Payload != nil {
		b = append(b, `,"payload":`...)
		b = append(b, r.Payload...)
	}
	if r.DeletedAt.Valid {
		b = append(b, `,"deleted":true,"deleted_at":"`...)
		b = time.UnixMilli(r.DeletedAt.Int64).UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","reason":`...)
		b = appendString(b, r.Reason.String)
	}
	b = append(b, `,"updated_at":"`...)
	b = time.UnixMilli(r.UpdatedAt).UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// appendString appends s as a JSON string: a fast path for plain ASCII, encoding/json for
// the rest.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Segment is a range of one source's ids in a partition: From ≤ id < Before, where an empty
// From is the start and an empty Before the end.
type Segment struct {
	Source string `json:"source"`
	From   string `json:"from,omitempty"`
	Before string `json:"before,omitempty"`
	// Records is how many records the segment held when it was planned.
	Records int64 `json:"records"`
}

// Reader is where a reindex reads records: the Store itself, or the API (cmd/erasure).
type Reader interface {
	// Sources lists the sources that have records.
	Sources(ctx context.Context) ([]string, error)
	// Segments splits a source's records in partition into at most n id ranges of about the
	// same size, and returns their total.
	Segments(ctx context.Context, partition, source string, n int) ([]Segment, int64, error)
	// ScanLines calls fn with each record of seg whose id is above after (when set), in id
	// order, at most limit (0: all), as a JSON line without its newline; the line is only valid
	// during the call.
	ScanLines(ctx context.Context, partition string, seg Segment, after string, limit int64, fn func(id string, line []byte) error) error
	// Lookup returns one record's JSON line and partition; found is false for an unknown id.
	Lookup(ctx context.Context, source, id string) (line []byte, partition string, found bool, err error)
}

var _ Reader = (*Store)(nil)

// Sources lists the sources that have records.
func (s *Store) Sources(ctx context.Context) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT source FROM records_ledger ORDER BY source`)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var src string
		if err := rows.Scan(&src); err != nil {
			return nil, unavailable(err)
		}
		out = append(out, src)
	}
	return out, unavailableOrNil(rows.Err())
}

// Segments splits source's records in partition into at most n id ranges. The total comes
// from the source's ledger; boundaries are interpolated between the smallest and largest id
// and snapped to real ids, each an index seek, so planning never walks the records. Ranges
// are about equal when ids are spread evenly (sequential or random ids) and always cover every
// id exactly once; each segment's Records is the even share of the total, an estimate.
func (s *Store) Segments(ctx context.Context, partition, source string, n int) ([]Segment, int64, error) {
	if err := ValidSource(source); err != nil {
		return nil, 0, err
	}
	if partition != Live && partition != Deleted {
		return nil, 0, erasure.Errorf(erasure.EINVALID, "partition must be live or deleted")
	}
	table := `records_` + partition
	var total int64
	err := s.rdb.QueryRowContext(ctx, s.q(`SELECT `+partition+`_count FROM records_ledger WHERE source = ?`), source).Scan(&total)
	if errors.Is(err, sql.ErrNoRows) {
		return []Segment{{Source: source}}, 0, nil
	} else if err != nil {
		return nil, 0, unavailable(err)
	}
	// Small sources are not worth splitting: at least minSegment records per segment.
	const minSegment = 1000
	n = int(max(1, min(int64(n), total/minSegment)))
	bounds := []string{""}
	if n > 1 {
		var lo, hi string
		if err := s.rdb.QueryRowContext(ctx, s.q(`SELECT id FROM `+table+` WHERE source = ? ORDER BY id LIMIT 1`), source).Scan(&lo); err != nil {
			return nil, 0, unavailable(err)
		}
		if err := s.rdb.QueryRowContext(ctx, s.q(`SELECT id FROM `+table+` WHERE source = ? ORDER BY id DESC LIMIT 1`), source).Scan(&hi); err != nil {
			return nil, 0, unavailable(err)
		}
		// Each boundary is above the previous one in the database's own order (its collation
		// may differ from byte order), so the ranges never overlap or invert.
		prev := lo
		for _, guess := range interpolate(lo, hi, n) {
			var id string
			err := s.rdb.QueryRowContext(ctx, s.q(`SELECT id FROM `+table+` WHERE source = ? AND id >= ? AND id > ? ORDER BY id LIMIT 1`), source, guess, prev).Scan(&id)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			} else if err != nil {
				return nil, 0, unavailable(err)
			}
			bounds = append(bounds, id)
			prev = id
		}
	}
	segs := make([]Segment, len(bounds))
	for i := range segs {
		segs[i] = Segment{Source: source, From: bounds[i], Records: total*int64(i+1)/int64(len(segs)) - total*int64(i)/int64(len(segs))}
		if i+1 < len(bounds) {
			segs[i].Before = bounds[i+1]
		}
	}
	return segs, total, nil
}

// interpolate returns n-1 strings evenly spaced between lo and hi (lo < hi), reading the 8
// bytes after their common prefix as numbers.
func interpolate(lo, hi string, n int) []string {
	p := 0
	for p < len(lo) && p < len(hi) && lo[p] == hi[p] {
		p++
	}
	num := func(s string) uint64 {
		var b [8]byte
		copy(b[:], s[min(p, len(s)):])
		return binary.BigEndian.Uint64(b[:])
	}
	a, b := num(lo), num(hi)
	out := make([]string, 0, n-1)
	for i := 1; i < n; i++ {
		// a + (b-a)*i/n without overflow.
		k := a + (b-a)/uint64(n)*uint64(i) + (b-a)%uint64(n)*uint64(i)/uint64(n)
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], k)
		// A guess only: keep it valid text for any database (no control bytes, valid UTF-8).
		guess := strings.Map(func(r rune) rune {
			if r < 0x20 {
				return -1
			}
			return r
		}, strings.ToValidUTF8(string(buf[:]), ""))
		out = append(out, lo[:p]+guess)
	}
	return out
}

// Scan calls fn with each record of seg in partition whose id is above after (when set), in
// id order, at most limit (0: all), and returns how many it read. The record is only valid
// during the call.
func (s *Store) Scan(ctx context.Context, partition string, seg Segment, after string, limit int64, fn func(*RawRecord) error) (int64, error) {
	if err := ValidSource(seg.Source); err != nil {
		return 0, err
	}
	if partition != Live && partition != Deleted {
		return 0, erasure.Errorf(erasure.EINVALID, "partition must be live or deleted")
	}
	query := `SELECT source, id, version, deleted_at, reason, updated_at, payload FROM records_` + partition + ` WHERE source = ?`
	args := []any{seg.Source}
	if after != "" && after >= seg.From {
		query += ` AND id > ?`
		args = append(args, after)
	} else if seg.From != "" {
		query += ` AND id >= ?`
		args = append(args, seg.From)
	}
	if seg.Before != "" {
		query += ` AND id < ?`
		args = append(args, seg.Before)
	}
	query += ` ORDER BY id`
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.rdb.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return 0, unavailable(err)
	}
	defer rows.Close()
	var n int64
	var r RawRecord
	for rows.Next() {
		if err := rows.Scan(&r.Source, &r.ID, &r.Version, &r.DeletedAt, &r.Reason, &r.UpdatedAt, &r.Payload); err != nil {
			return n, unavailable(err)
		}
		n++
		if err := fn(&r); err != nil {
			return n, err
		}
	}
	return n, unavailableOrNil(rows.Err())
}

// ScanLines implements Reader.
func (s *Store) ScanLines(ctx context.Context, partition string, seg Segment, after string, limit int64, fn func(id string, line []byte) error) error {
	var line []byte
	_, err := s.Scan(ctx, partition, seg, after, limit, func(r *RawRecord) error {
		line = r.AppendJSON(line[:0])
		return fn(r.ID, line)
	})
	return err
}

// Lookup implements Reader.
func (s *Store) Lookup(ctx context.Context, source, id string) ([]byte, string, bool, error) {
	rec, err := s.Get(ctx, source, id)
	if erasure.ErrorCode(err) == erasure.ENOTFOUND {
		return nil, "", false, nil
	} else if err != nil {
		return nil, "", false, err
	}
	raw := RawRecord{Source: rec.Source, ID: rec.ID, Version: rec.Version, UpdatedAt: rec.UpdatedAt.UnixMilli(), Payload: sql.RawBytes(rec.Payload)}
	if rec.DeletedAt != nil {
		raw.DeletedAt = sql.NullInt64{Int64: rec.DeletedAt.UnixMilli(), Valid: true}
		raw.Reason = sql.NullString{String: rec.Reason, Valid: true}
	}
	return raw.AppendJSON(nil), rec.Partition, true, nil
}

// Batch is what a Sink receives: Records JSON lines, each ended by a newline, in Body.
type Batch struct {
	Body    []byte
	Records int
	// Segment and LastID say where the batch ends, for logs.
	Segment int
	LastID  string
}

// Sink receives reindex batches. Send may be called from several goroutines at once; it
// must not keep b.Body after returning. An error stops the reindex (the checkpoint then
// resumes after the last batch that was sent).
type Sink interface {
	Send(ctx context.Context, b *Batch) error
	Close() error
}

// ReindexOptions drive a reindex.
type ReindexOptions struct {
	// Source limits the reindex to one source (default: every source).
	Source string
	// IDs selects specific records (specific mode); ids not live are warned about.
	IDs []string
	// Limit stops after this many records (partial mode).
	Limit int64
	// IncludeDeleted also streams the deleted partition, after live.
	IncludeDeleted bool
	// BatchRecords and BatchBytes bound each batch (defaults 1000 and 4 MiB); a record larger
	// than BatchBytes travels alone.
	BatchRecords int
	BatchBytes   int
	// Parallel is the number of segments read at once per source (default 4).
	Parallel int
	// Checkpoint is a file recording each segment's progress; when it exists and was made by
	// the same reindex, the reindex resumes from it. It is removed when the reindex ends.
	Checkpoint string
	// Progress is called about every ProgressEvery (default 1s) and once at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Warn is called for each specific id that cannot be streamed.
	Warn func(msg string)
}

// Progress is a reindex's progress.
type Progress struct {
	Records int64         `json:"records"`
	Bytes   int64         `json:"bytes"`
	Total   int64         `json:"total"`
	Elapsed time.Duration `json:"elapsed"`
	// Rate is records per second; ETA is the time left at that rate.
	Rate float64       `json:"rate"`
	ETA  time.Duration `json:"eta"`
	Done bool          `json:"done"`
}

// ReindexReport is what a reindex did.
type ReindexReport struct {
	Records  int64         `json:"records"`
	Bytes    int64         `json:"bytes"`
	Batches  int64         `json:"batches"`
	Segments int           `json:"segments"`
	Missing  int           `json:"missing"`
	Resumed  bool          `json:"resumed"`
	Elapsed  time.Duration `json:"elapsed"`
}

// checkpoint is the on-disk state of a reindex.
type checkpoint struct {
	Key      string         `json:"key"`
	Segments []checkSegment `json:"segments"`
	mu       sync.Mutex
	path     string
	last     time.Time
}

type checkSegment struct {
	Partition string  `json:"partition"`
	Segment   Segment `json:"segment"`
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

// Reindex streams records from r to sink in batches bounded by count and bytes: the live
// partition (tombstones not yet archived included, so the index drops them), and deleted
// too with IncludeDeleted. Sources are read in Parallel segments at once. Delivery is at
// least once: a resumed reindex may send again the batches after its last checkpoint.
func Reindex(ctx context.Context, r Reader, sink Sink, o ReindexOptions) (*ReindexReport, error) {
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
		if err := ValidSource(o.Source); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	rep := &ReindexReport{}
	var records, bytes, batches atomic.Int64
	var total int64
	stopProgress := func() {}
	report := func(done bool) {
		if o.Progress == nil {
			return
		}
		p := Progress{Records: records.Load(), Bytes: bytes.Load(), Total: total, Elapsed: time.Since(start), Done: done}
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
	finish := func(err error) (*ReindexReport, error) {
		stopProgress()
		rep.Records, rep.Bytes, rep.Batches, rep.Elapsed = records.Load(), bytes.Load(), batches.Load(), time.Since(start)
		report(err == nil)
		return rep, err
	}

	if len(o.IDs) > 0 {
		if o.Source == "" {
			return finish(erasure.Errorf(erasure.EINVALID, "specific ids need a source"))
		}
		total = int64(len(o.IDs))
		w := newBatcher(ctx, sink, o, 0, &records, &bytes, &batches)
		for _, id := range dedupe(o.IDs) {
			if err := ValidID(id); err != nil {
				return finish(err)
			}
			line, part, found, err := r.Lookup(ctx, o.Source, id)
			if err != nil {
				return finish(err)
			}
			if !found || (part != Live && !o.IncludeDeleted) {
				rep.Missing++
				if o.Warn != nil {
					what := "was never seen"
					if found {
						what = "is archived (in deleted)"
					}
					o.Warn(fmt.Sprintf("record %s/%s %s: not streamed", o.Source, clip(id), what))
				}
				continue
			}
			if err := w.add(id, line); err != nil {
				return finish(err)
			}
		}
		return finish(w.flush())
	}

	parts := []string{Live}
	if o.IncludeDeleted {
		parts = append(parts, Deleted)
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
				records.Add(cs.Sent)
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
				if err := runSegment(ctx, r, sink, o, cp, i, &left, &records, &bytes, &batches); err != nil {
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

func runSegment(ctx context.Context, r Reader, sink Sink, o ReindexOptions, cp *checkpoint, i int, left, records, bytes, batches *atomic.Int64) error {
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
	w := newBatcher(ctx, sink, o, i, records, bytes, batches)
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

// batcher collects lines into batches bounded by count and bytes.
type batcher struct {
	ctx                     context.Context
	sink                    Sink
	maxRecords, maxBytes    int
	b                       Batch
	last                    string
	records, bytes, batches *atomic.Int64
	sent                    func(last string, n int)
}

func newBatcher(ctx context.Context, sink Sink, o ReindexOptions, seg int, records, bytes, batches *atomic.Int64) *batcher {
	return &batcher{ctx: ctx, sink: sink, maxRecords: o.BatchRecords, maxBytes: o.BatchBytes,
		b: Batch{Segment: seg, Body: make([]byte, 0, min(o.BatchBytes, 8<<20))}, records: records, bytes: bytes, batches: batches}
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
	w.records.Add(int64(w.b.Records))
	w.bytes.Add(int64(len(w.b.Body)))
	w.batches.Add(1)
	if w.sent != nil {
		w.sent(w.last, w.b.Records)
	}
	w.b.Body, w.b.Records = w.b.Body[:0], 0
	return nil
}
