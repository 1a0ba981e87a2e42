package files

import (
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/s2"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/format"
)

// filterBatch is how many values are read from a page at once when a row group is filtered.
const filterBatch = 4096

// parquetRewrites counts the Parquet partitions being rewritten in this process: a rewrite
// filters several row groups at once only when fewer rewrites than cores are running.
var parquetRewrites atomic.Int32

// parallelBytes bounds the compressed bytes of the row groups filtered at once, each held in
// memory until it is committed (a row group written by Spark is typically 128 MiB).
var parallelBytes int64 = 256 << 20

func rowGroupWorkers() int {
	return max(1, runtime.GOMAXPROCS(0)/max(1, int(parquetRewrites.Load())))
}

// writeGroups writes groups to w in order: a row group whose matched list is empty whole (the
// writer copies its pages verbatim when it can), the others without the matched rows (see
// rowFilter). When cores are idle, row groups are filtered in parallel, each into a row group
// buffered in memory, and committed to w in their order, as long as their compressed sizes
// (sizes, from the file's metadata) sum to at most parallelBytes. On error it returns the index
// of the row group that failed; no filtering goroutine is left running.
func writeGroups(w *parquet.Writer, schema *parquet.Schema, groups []parquet.RowGroup, sizes []int64, matched [][]int64) (int, error) {
	parquetRewrites.Add(1)
	defer parquetRewrites.Add(-1)
	type pendingGroup struct {
		g    int
		rg   *parquet.ConcurrentRowGroupWriter
		done chan error
	}
	var pending []pendingGroup
	var pendingBytes int64
	defer func() {
		for _, p := range pending {
			<-p.done
		}
	}()
	commitFirst := func() (int, error) {
		p := pending[0]
		err := <-p.done
		pending = pending[1:]
		pendingBytes -= sizes[p.g]
		if err == nil {
			_, err = p.rg.Commit()
		}
		return p.g, err
	}
	filters := make(chan *rowFilter, runtime.GOMAXPROCS(0))
	filter := func() *rowFilter {
		select {
		case f := <-filters:
			return f
		default:
			return newRowFilter(schema)
		}
	}
	release := func(f *rowFilter) {
		select {
		case filters <- f:
		default:
		}
	}
	for g, rg := range groups {
		// A row group copied whole, or filtered while no other is, goes straight to w: every
		// pending one is committed first.
		limit := rowGroupWorkers()
		inline := len(matched[g]) == 0 || limit == 1 || sizes[g] > parallelBytes/2
		for len(pending) > 0 && (inline || len(pending) >= limit || pendingBytes+sizes[g] > parallelBytes) {
			if eg, err := commitFirst(); err != nil {
				return eg, err
			}
		}
		switch {
		case len(matched[g]) == 0:
			if _, err := w.WriteRowGroup(rg); err != nil {
				return g, err
			}
		case inline:
			f := filter()
			if err := f.fill(w.ColumnWriters(), rg, matched[g]); err != nil {
				return g, err
			}
			release(f)
			if err := w.Flush(); err != nil {
				return g, err
			}
		default:
			p := pendingGroup{g: g, rg: w.BeginRowGroup(), done: make(chan error, 1)}
			f := filter()
			go func() {
				err := f.fill(p.rg.ColumnWriters(), rg, matched[g])
				release(f)
				p.done <- err
			}()
			pending = append(pending, p)
			pendingBytes += sizes[g]
		}
	}
	for len(pending) > 0 {
		if eg, err := commitFirst(); err != nil {
			return eg, err
		}
	}
	return 0, nil
}

// rowFilter rewrites row groups without some of their rows, column by column: each column
// chunk's pages are decoded in batches of values, the values of dropped rows are skipped, and
// the others go straight to a column writer. Rows are never assembled, which is what costs
// most in a row by row copy when every row group has a match. A rowFilter is used by one
// goroutine at a time.
type rowFilter struct {
	repeated []bool // by column index: whether the column is repeated
	buf      []parquet.Value
	tail     []parquet.Value // values of a repeated column's row not yet complete
}

func newRowFilter(schema *parquet.Schema) *rowFilter {
	f := &rowFilter{buf: make([]parquet.Value, filterBatch)}
	paths := schema.Columns()
	f.repeated = make([]bool, len(paths))
	for _, path := range paths {
		leaf, _ := schema.Lookup(path...)
		f.repeated[leaf.ColumnIndex] = leaf.MaxRepetitionLevel > 0
	}
	return f
}

// fill writes the rows of rg but those numbered in drop (ascending, 0-based) to cols, the
// column writers of one output row group. Errors decoding the source are sourceErr values.
func (f *rowFilter) fill(cols []*parquet.ColumnWriter, rg parquet.RowGroup, drop []int64) error {
	chunks := rg.ColumnChunks()
	if len(cols) != len(chunks) || len(f.repeated) != len(chunks) {
		return sourceErr{fmt.Errorf("%d columns, the schema has %d", len(chunks), len(cols))}
	}
	for i, chunk := range chunks {
		if err := f.column(cols[i], chunk, f.repeated[i], rg.NumRows(), drop); err != nil {
			return err
		}
	}
	return nil
}

// sourceErr is a failure to read or decode the source partition (as opposed to writing).
type sourceErr struct{ err error }

func (e sourceErr) Error() string { return e.err.Error() }
func (e sourceErr) Unwrap() error { return e.err }

// column copies one column chunk of numRows rows to dst, skipping the rows in drop.
func (f *rowFilter) column(dst *parquet.ColumnWriter, chunk parquet.ColumnChunk, repeated bool, numRows int64, drop []int64) error {
	pages := chunk.Pages()
	defer pages.Close()
	row := int64(-1) // the row of the last value read
	keep := false
	f.tail = f.tail[:0]
	for {
		page, err := pages.ReadPage()
		if err == io.EOF {
			break
		} else if err != nil {
			return sourceErr{fmt.Errorf("column %d: %w", chunk.Column(), err)}
		}
		vr := page.Values()
		for {
			n, rerr := vr.ReadValues(f.buf)
			vals := f.buf[:n]
			k := 0
			for _, v := range vals {
				if !repeated || v.RepetitionLevel() == 0 {
					row++
					for len(drop) > 0 && drop[0] < row {
						drop = drop[1:]
					}
					keep = len(drop) == 0 || drop[0] != row
				}
				if keep {
					vals[k] = v
					k++
				}
			}
			if err := f.write(dst, vals[:k], repeated); err != nil {
				parquet.Release(page)
				return err
			}
			if rerr == io.EOF {
				break
			} else if rerr != nil {
				parquet.Release(page)
				return sourceErr{fmt.Errorf("column %d: decoding: %w", chunk.Column(), rerr)}
			}
		}
		// The tail may point into the page's buffers: copy it before they are recycled.
		for i := range f.tail {
			f.tail[i] = f.tail[i].Clone()
		}
		parquet.Release(page)
	}
	if len(f.tail) > 0 {
		if _, err := dst.WriteRowValues(f.tail); err != nil {
			return err
		}
		f.tail = f.tail[:0]
	}
	if row+1 != numRows {
		return sourceErr{fmt.Errorf("column %d has %d rows for %d", chunk.Column(), row+1, numRows)}
	}
	return nil
}

// write hands whole rows to dst (a row must not span two pages, and the column writer may cut
// a page after any call). For a repeated column, the values of the last row of a batch wait in
// f.tail until the next row starts.
func (f *rowFilter) write(dst *parquet.ColumnWriter, vals []parquet.Value, repeated bool) error {
	if !repeated {
		if len(vals) == 0 {
			return nil
		}
		_, err := dst.WriteRowValues(vals)
		return err
	}
	last := -1 // index of the last row start in vals
	for i := len(vals) - 1; i >= 0; i-- {
		if vals[i].RepetitionLevel() == 0 {
			last = i
			break
		}
	}
	if last < 0 {
		f.tail = append(f.tail, vals...)
		return nil
	}
	if len(f.tail) > 0 {
		f.tail = append(f.tail, vals[:last]...)
		if _, err := dst.WriteRowValues(f.tail); err != nil {
			return err
		}
	} else if last > 0 {
		if _, err := dst.WriteRowValues(vals[:last]); err != nil {
			return err
		}
	}
	f.tail = append(f.tail[:0], vals[last:]...)
	return nil
}

// snappyCodec is Parquet's SNAPPY codec with the fast block encoder: parquet-go's own encodes
// with the slower "better" mode, which costs most of a rewrite's time for a few percent of
// size. Its output is ordinary Snappy, decoded by any reader.
type snappyCodec struct{ snappy.Codec }

func (*snappyCodec) Encode(dst, src []byte) ([]byte, error) {
	return s2.EncodeSnappy(dst[:cap(dst)], src), nil
}

func (*snappyCodec) CompressionCodec() format.CompressionCodec { return format.Snappy }

// fastSnappy returns schema with its Snappy columns compressed by snappyCodec (the schema of a
// file names each column's codec, which the writer follows), or schema itself when no column
// uses Snappy. Names, field order, types and repetition are those of schema.
func fastSnappy(schema *parquet.Schema) *parquet.Schema {
	found := false
	for _, path := range schema.Columns() {
		leaf, _ := schema.Lookup(path...)
		if c := leaf.Node.Compression(); c != nil && c.CompressionCodec() == format.Snappy {
			found = true
		}
	}
	if !found {
		return schema
	}
	return parquet.NewSchema(schema.Name(), groupNode{Node: schema, fields: fastSnappyFields(schema.Fields())})
}

func fastSnappyFields(fields []parquet.Field) []parquet.Field {
	out := make([]parquet.Field, len(fields))
	for i, f := range fields {
		switch {
		case !f.Leaf():
			out[i] = groupField{Field: f, fields: fastSnappyFields(f.Fields())}
		case f.Compression() != nil && f.Compression().CompressionCodec() == format.Snappy:
			out[i] = snappyField{f}
		default:
			out[i] = f
		}
	}
	return out
}

type groupNode struct {
	parquet.Node
	fields []parquet.Field
}

func (n groupNode) Fields() []parquet.Field { return n.fields }

type groupField struct {
	parquet.Field
	fields []parquet.Field
}

func (n groupField) Fields() []parquet.Field { return n.fields }

type snappyField struct{ parquet.Field }

func (snappyField) Compression() compress.Codec { return &snappyCodec{} }

// syncReaderAt serializes the reads of a partition, whose byte count is not safe for
// concurrent use, when row groups are decoded in parallel.
type syncReaderAt struct {
	mu sync.Mutex
	r  io.ReaderAt
}

func (s *syncReaderAt) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.ReadAt(p, off)
}

// keyProbe tests keys against a key set through a bitmap of the set's hashes first: most keys
// of a partition are not in the set, and the bitmap (a few bits per key, in cache) rules them
// out faster than the map lookup that confirms the others.
type keyProbe struct {
	ks   *keySet
	bits []uint64
	mask uint64
}

func newKeyProbe(ks *keySet) *keyProbe {
	n := uint64(1 << 12)
	for n < uint64(len(ks.hashes))*16 && n < 1<<23 {
		n <<= 1
	}
	p := &keyProbe{ks: ks, bits: make([]uint64, n/64), mask: n - 1}
	for _, h := range ks.hashes {
		h &= p.mask
		p.bits[h>>6] |= 1 << (h & 63)
	}
	return p
}

func (p *keyProbe) has(key []byte) bool {
	if p.ks.match != nil {
		return p.ks.match(key)
	}
	h := xxhash.Sum64(key) & p.mask
	return p.bits[h>>6]&(1<<(h&63)) != 0 && p.ks.has(key)
}
