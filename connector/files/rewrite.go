package files

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/gzip"

	"erasure"
)

// PartitionResult is what RewritePartition did to one partition.
type PartitionResult struct {
	Path string `json:"path"`
	// Rows is the rows read and Removed those that will be gone once the sweep commits.
	Rows    int64 `json:"rows"`
	Removed int64 `json:"removed"`
	// BytesRead counts the partition bytes read by this call (0 when skipped or already done).
	BytesRead int64 `json:"bytes_read"`
	// Skipped is set when the skip index showed that the partition holds no queued key.
	Skipped bool `json:"skipped,omitempty"`
	// Prepared is set when a rewritten copy waits beside the partition for Commit.
	Prepared bool `json:"prepared,omitempty"`
}

// RewritePartition is one unit of a sweep: it reads partition p (unless the skip index rules it
// out) and, when rows hold a key of the plan, writes the partition without them into a synced
// temporary file beside it, to be swapped in by Commit. It records the outcome in the journal,
// so calling it again for a partition already handled and unchanged does nothing. A partition
// that has disappeared counts as clean.
//
// Errors name the file: a *erasure.PermanentError for bad content (malformed JSON, CSV or
// Parquet, a truncated gzip stream, a missing key column), a transient one for I/O failures.
// On error no temporary file is left.
func (c *Connector) RewritePartition(ctx context.Context, plan *Plan, p Partition) (PartitionResult, error) {
	res := PartitionResult{Path: p.Path}
	tr := trackerFrom(ctx)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if m, ok := c.validMarker(plan.ID, p.Path); ok {
		if err := erasure.GuardFrom(ctx).CheckShare(c.name, "partition "+p.Path, m.Removed, m.Rows); err != nil {
			return res, err
		}
		tr.partDone(p.Size, m.Rows, m.Removed)
		return PartitionResult{Path: p.Path, Rows: m.Rows, Removed: m.Removed, Skipped: m.Skipped, Prepared: m.State == statePrepared}, nil
	}
	st, err := os.Stat(c.abs(p.Path))
	if errors.Is(err, os.ErrNotExist) {
		tr.partDone(p.Size, 0, 0)
		return res, nil
	} else if err != nil {
		return res, classifyIO(fmt.Errorf("files: %s: %w", c.abs(p.Path), err))
	}
	m := marker{Path: p.Path, State: stateClean, Size: st.Size(), ModNs: st.ModTime().UnixNano()}
	indexed := false
	useIndex := c.cfg.Index && plan.keys.match == nil
	if useIndex {
		ix, n, ok := c.readIndexN(p.Path)
		tr.index(n)
		if ok {
			indexed = true
			if !ix.mayHold(plan.keys.indexHashes(c.indexKey())) {
				m.Skipped = true
				if err := c.writeMarker(plan.ID, m); err != nil {
					return res, classifyIO(err)
				}
				tr.partDone(p.Size, 0, 0)
				res.Skipped = true
				return res, nil
			}
		}
	}
	tmp := c.tempPath(p.Path, plan.ID)
	out := &sink{path: attemptPath(tmp), final: tmp, gzip: c.gzipped(p.Path)}
	var hashes *[]uint64
	if useIndex {
		hashes = new([]uint64)
	}
	stats, err := c.process(ctx, p.Path, plan.keys, modeRewrite, &processOut{sink: out, hashes: hashes, key: c.indexKey()})
	if err != nil {
		out.abort()
		return res, err
	}
	// The share guard: a sweep about to drop most of a partition is a broken key or a source
	// that answered "everything"; nothing is swapped (the caller aborts the sweep).
	if err := erasure.GuardFrom(ctx).CheckShare(c.name, "partition "+p.Path, stats.removed, stats.rows); err != nil {
		out.abort()
		return res, err
	}
	hook("prepared", p.Path)
	m.Rows, m.Removed, m.Read = stats.rows, stats.removed, stats.read
	m.Hits = plan.hitIndexes(stats.hits)
	res.Rows, res.Removed, res.BytesRead = stats.rows, stats.removed, stats.read
	if stats.removed > 0 {
		m.State = statePrepared
		m.TempSize = out.size
		res.Prepared = true
		if hashes != nil {
			if err := c.writeHashes(filepath.Join(c.journalDir(plan.ID), "parts", markerName(p.Path)+".keys"), *hashes); err != nil {
				out.abort()
				return res, classifyIO(err)
			}
		}
	} else if hashes != nil && !indexed {
		c.writeIndexFor(p.Path, st, *hashes)
	}
	if err := c.writeMarker(plan.ID, m); err != nil {
		out.abort()
		return res, classifyIO(err)
	}
	tr.partDone(p.Size, stats.rows, stats.removed)
	return res, nil
}

type mode int

const (
	modeRewrite mode = iota // write kept rows to the sink once a row matches
	modeFind                // stop at the first matching row
	modeScan                // read every row, collecting key hashes (index build)
	modeCheck               // read the header / schema only
)

// processOut is where a rewrite goes: the sink for kept rows, and the kept keys' hashes
// under the index key.
type processOut struct {
	sink   *sink
	hashes *[]uint64
	key    *indexKey
}

func (o *processOut) hash(key []byte) {
	if o != nil && o.hashes != nil {
		*o.hashes = append(*o.hashes, o.key.sum(key))
	}
}

type stats struct {
	rows, removed, read int64
	// hits counts the matching rows of each key, when counting is on (a rewrite).
	hits map[string]int64
}

// hit records one matching row of key.
func (st *stats) hit(key []byte) {
	st.removed++
	st.count(key)
}

// count records one matching row of key in hits (without counting it removed: Parquet counts
// its removed rows per row group).
func (st *stats) count(key []byte) {
	if st.hits != nil {
		st.hits[string(key)]++
	}
}

// process runs one partition through its format in the given mode.
func (c *Connector) process(ctx context.Context, rel string, ks *keySet, md mode, out *processOut) (stats, error) {
	name := c.abs(rel)
	f, err := os.Open(name)
	if err != nil {
		return stats{}, classifyIO(fmt.Errorf("files: %s: %w", name, err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return stats{}, classifyIO(fmt.Errorf("files: %s: %w", name, err))
	}
	cr := &countingReader{f: f, tr: trackerFrom(ctx), ctx: ctx}
	var st stats
	if md == modeRewrite {
		st.hits = map[string]int64{}
	}
	switch c.cfg.Format {
	case formatParquet:
		err = c.processParquet(cr, fi.Size(), ks, md, out, &st)
	default:
		err = c.processRecords(f, cr, rel, ks, md, out, &st)
	}
	st.read = cr.n
	if err != nil {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		if errors.Is(err, errFound) {
			return st, nil
		}
		var ee *erasure.Error
		if erasure.IsPermanent(err) || errors.As(err, &ee) {
			return st, err
		}
		var te *erasure.TransientError
		if errors.As(err, &te) {
			return st, err
		}
		return st, erasure.Permanent(fmt.Errorf("files: %s: %w", name, err))
	}
	if out != nil && out.sink != nil && out.sink.f != nil {
		if err := out.sink.close(); err != nil {
			return st, classifyIO(fmt.Errorf("files: writing %s: %w", out.sink.path, err))
		}
	}
	return st, nil
}

// badInput marks a content error of a file: permanent, with the file's name.
func badInput(name string, format string, args ...any) error {
	return erasure.Permanent(fmt.Errorf("files: %s: %s", name, fmt.Sprintf(format, args...)))
}

// sink is a temporary file being written, gzip-compressed when the partition is. It is
// written under a name of its own (path) and renamed to final once synced, so that two workers
// preparing the same partition at once (a lease taken over from a slow worker) never write
// into one file: final is always one whole rewrite.
type sink struct {
	path    string
	final   string
	renamed bool // path was renamed to final
	gzip    bool
	f       *os.File
	bw      *bufio.Writer
	gz      *gzip.Writer
	w       io.Writer
	size    int64
}

func (s *sink) open() error {
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return erasure.Transient(fmt.Errorf("files: creating %s: %w", s.path, err), 0)
	}
	s.f = f
	s.bw = bufio.NewWriterSize(f, 1<<20)
	s.w = s.bw
	if s.gzip {
		s.gz = gzip.NewWriter(s.bw)
		s.w = s.gz
	}
	return nil
}

// close flushes, syncs and closes the file, keeping its size.
func (s *sink) close() error {
	var err error
	if s.gz != nil {
		err = s.gz.Close()
	}
	if err == nil {
		err = s.bw.Flush()
	}
	if err == nil {
		err = s.f.Sync()
	}
	if err == nil {
		var st os.FileInfo
		if st, err = s.f.Stat(); err == nil {
			s.size = st.Size()
		}
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if err == nil && s.final != "" {
		if err = os.Rename(s.path, s.final); err == nil {
			s.renamed = true
		}
	}
	if err != nil {
		os.Remove(s.path)
	}
	return err
}

// attemptPath returns a name beside tmp for one attempt at writing it: still a temporary
// file of the same sweep (removeTemps and isTempName know it), unique to the attempt.
func attemptPath(tmp string) string {
	var b [6]byte
	rand.Read(b[:])
	dir, base := filepath.Split(tmp)
	i := strings.Index(base, ".erasure-")
	return filepath.Join(dir, base[:i]+"."+hex.EncodeToString(b[:])+base[i:])
}

func (s *sink) abort() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	os.Remove(s.path)
	if s.renamed {
		os.Remove(s.final)
	}
}

// keySet is the set of key values of a sweep, with their sorted (unkeyed, in memory only) hashes
// and a one-hash bit filter in front of the map (2 to 3% false positives, in a table small
// enough for the cache), so that most rows' keys are ruled out without a map lookup.
type keySet struct {
	m      map[string]struct{}
	hashes []uint64
	filter []uint64
	mask   uint64 // bit index mask of filter
	// match, when set, decides instead of the set: the rows of a job (retention, replay) are
	// chosen by a predicate on their field's value, and the skip index cannot rule any out.
	match func([]byte) bool

	mu     sync.Mutex
	idxKey *indexKey // the key idx was hashed under
	idx    []uint64  // the keys' hashes under idxKey, sorted: the skip index's query
}

// indexHashes returns the set's keys hashed under k, sorted (computed once per key).
func (ks *keySet) indexHashes(k *indexKey) []uint64 {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.idxKey != k {
		idx := make([]uint64, 0, len(ks.m))
		for v := range ks.m {
			idx = append(idx, k.sum([]byte(v)))
		}
		slices.Sort(idx)
		ks.idx, ks.idxKey = idx, k
	}
	return ks.idx
}

func newKeySet(keys []string) *keySet {
	ks := &keySet{m: make(map[string]struct{}, len(keys))}
	for _, k := range keys {
		ks.m[k] = struct{}{}
		ks.hashes = append(ks.hashes, xxhash.Sum64String(k))
	}
	sort.Slice(ks.hashes, func(i, j int) bool { return ks.hashes[i] < ks.hashes[j] })
	nbits := uint64(1 << 12)
	for nbits < 32*uint64(len(keys)) && nbits < 1<<26 {
		nbits <<= 1
	}
	ks.filter = make([]uint64, nbits/64)
	ks.mask = nbits - 1
	for _, h := range ks.hashes {
		b := h & ks.mask
		ks.filter[b>>6] |= 1 << (b & 63)
	}
	return ks
}

func (ks *keySet) has(b []byte) bool {
	if ks.match != nil {
		return ks.match(b)
	}
	h := xxhash.Sum64(b) & ks.mask
	if ks.filter[h>>6]&(1<<(h&63)) == 0 {
		return false
	}
	_, ok := ks.m[string(b)]
	return ok
}

// countingReader counts the bytes read from a partition into the sweep's progress and stops
// reading when the context is cancelled.
type countingReader struct {
	f   *os.File
	tr  *tracker
	ctx context.Context
	n   int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.f.Read(p)
	r.n += int64(n)
	r.tr.read(int64(n))
	return n, err
}

func (r *countingReader) ReadAt(p []byte, off int64) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.f.ReadAt(p, off)
	r.n += int64(n)
	r.tr.read(int64(n))
	return n, err
}

// Hooks for the crash tests: hook is called at named points of a sweep.
var (
	hookMu sync.RWMutex
	hookFn func(point, partition string)
)

func hook(point, partition string) {
	hookMu.RLock()
	fn := hookFn
	hookMu.RUnlock()
	if fn != nil {
		fn(point, partition)
	}
}
