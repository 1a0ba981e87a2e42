package files

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/parquet-go/parquet-go"
)

// processParquet runs a Parquet partition. It first reads only the key column chunk of each
// row group; a partition without a match is left at that. Otherwise the partition is written
// anew with the same schema, key/value metadata and codec: row groups without a match are
// handed whole to the writer (which copies their pages verbatim when their encodings allow),
// the others are re-encoded without the matching rows, column by column (see writeGroups), each
// still one row group, in order. Snappy columns are re-encoded with the fast Snappy encoder (see
// snappyCodec), so a rewritten row group may take a few percent more bytes.
func (c *Connector) processParquet(r *countingReader, size int64, ks *keySet, md mode, out *processOut, st *stats) error {
	name := r.f.Name()
	f, err := parquet.OpenFile(&syncReaderAt{r: r}, size, parquet.SkipBloomFilters(true))
	if err != nil {
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		return badInput(name, "not a readable Parquet file: %v", err)
	}
	leaf, ok := f.Schema().Lookup(c.path...)
	if !ok {
		return badInput(name, "has no column %q", c.cfg.Key.Field)
	}
	if leaf.MaxRepetitionLevel > 0 {
		return badInput(name, "key column %q is repeated; only required or optional columns can be keys", c.cfg.Key.Field)
	}
	if md == modeCheck {
		return nil
	}
	groups := f.RowGroups()
	matched := make([][]int64, len(groups)) // matching row numbers of each row group, ascending
	any := false
	buf := make([]parquet.Value, 1024)
	var key []byte
	probe := newKeyProbe(ks)
	for g, rg := range groups {
		st.rows += rg.NumRows()
		pages := rg.ColumnChunks()[leaf.ColumnIndex].Pages()
		row := int64(0)
		for {
			page, err := pages.ReadPage()
			if err == io.EOF {
				break
			} else if err != nil {
				pages.Close()
				if r.ctx.Err() != nil {
					return r.ctx.Err()
				}
				return badInput(name, "row group %d: reading column %q: %v", g, c.cfg.Key.Field, err)
			}
			vr := page.Values()
			for {
				n, err := vr.ReadValues(buf)
				for _, v := range buf[:n] {
					if !v.IsNull() {
						key = valueKey(key[:0], v)
						if probe.has(key) {
							matched[g] = append(matched[g], row)
							if md == modeRewrite {
								ks.removedRow(key)
							}
							any = true
							if md == modeFind {
								parquet.Release(page)
								pages.Close()
								st.removed = 1
								return errFound
							}
						} else if len(key) > 0 {
							out.hash(key)
						}
					}
					row++
				}
				if err == io.EOF {
					break
				} else if err != nil {
					parquet.Release(page)
					pages.Close()
					return badInput(name, "row group %d: decoding column %q: %v", g, c.cfg.Key.Field, err)
				}
			}
			parquet.Release(page)
		}
		pages.Close()
		if row != rg.NumRows() {
			return badInput(name, "row group %d: key column has %d values for %d rows", g, row, rg.NumRows())
		}
		st.removed += int64(len(matched[g]))
	}
	if !any || md != modeRewrite {
		return nil
	}
	if err := out.sink.open(); err != nil {
		return err
	}
	opts := []parquet.WriterOption{parquet.PageBufferSize(1 << 20)}
	if meta := f.Metadata(); len(meta.RowGroups) > 0 && len(meta.RowGroups[0].Columns) > 0 {
		if codec := parquet.LookupCompressionCodec(meta.RowGroups[0].Columns[0].MetaData.Codec); codec != nil {
			opts = append(opts, parquet.Compression(codec))
		}
	}
	for _, kv := range f.Metadata().KeyValueMetadata {
		opts = append(opts, parquet.KeyValueMetadata(kv.Key, kv.Value))
	}
	w := parquet.NewWriter(out.sink.w, append([]parquet.WriterOption{fastSnappy(f.Schema())}, opts...)...)
	sizes := make([]int64, len(groups))
	for g, rg := range f.Metadata().RowGroups {
		for _, col := range rg.Columns {
			sizes[g] += col.MetaData.TotalCompressedSize
		}
	}
	if g, err := writeGroups(w, f.Schema(), groups, sizes, matched); err != nil {
		return c.parquetWriteErr(r, name, g, err)
	}
	if err := w.Close(); err != nil {
		return c.parquetWriteErr(r, name, -1, err)
	}
	return nil
}

// parquetWriteErr tells a failure to write (transient: disk) from one to read the source
// (bad input), which the writer reports alike when it copies a row group.
func (c *Connector) parquetWriteErr(r *countingReader, name string, g int, err error) error {
	if r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	var pe interface{ Timeout() bool }
	if errors.As(err, &pe) {
		return &readError{err}
	}
	return badInput(name, "rewriting row group %d: %v", g, err)
}

// valueKey appends the string form of a Parquet value, as keys are compared: byte arrays as
// their bytes, integers in decimal, floating point values in canonical form (see
// canonicalNumber), booleans as true/false.
func valueKey(b []byte, v parquet.Value) []byte {
	switch v.Kind() {
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return append(b, v.ByteArray()...)
	case parquet.Int32:
		return strconv.AppendInt(b, int64(v.Int32()), 10)
	case parquet.Int64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case parquet.Boolean:
		return strconv.AppendBool(b, v.Boolean())
	case parquet.Float, parquet.Double:
		f := v.Double()
		if v.Kind() == parquet.Float {
			f = float64(v.Float())
		}
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return strconv.AppendInt(b, int64(f), 10)
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	}
	return append(b, fmt.Sprint(v)...)
}
